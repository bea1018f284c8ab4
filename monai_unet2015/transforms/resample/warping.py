# Copyright (c) monai_unet2015 contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Resample several channel-first images at ``x + u(x)`` with one shared displacement field.

Images that share an interpolation mode, a padding mode and a compute dtype are concatenated along channels and
resampled by one call: :py:func:`~.grid_sample.threaded_grid_sample` for ``"nearest"`` / ``"bilinear"`` /
``"bicubic"``, :py:func:`~.bspline.bspline_resample` for ``3`` (cubic B-spline).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable, Union

import numpy as np
import torch

from monai.utils import look_up_option

from .bspline import _bspline_resample
from .grid import sampling_grid
from .grid_sample import RESAMPLE_PADDING_MODES, look_up_resample_padding_mode, threaded_grid_sample

__all__ = [
    "RESAMPLE_MODES",
    "RESAMPLE_PADDING_MODES",
    "look_up_resample_mode",
    "look_up_resample_padding_mode",
    "warp",
    "warp_lazy",
]

#: Accepted interpolation modes. ``0`` / ``1`` are aliases of ``"nearest"`` / ``"bilinear"`` (spline orders, as in
#: MONAI's ``Resample``); ``3`` is cubic B-spline interpolation (``scipy.ndimage.map_coordinates(order=3)``).
RESAMPLE_MODES = ("nearest", "bilinear", "bicubic", 0, 1, 3)

ModeType = Union[str, int]
_SPLINE3 = 3
# integer dtypes whose values are all exactly representable in float32
_SMALL_INTS = tuple(
    getattr(torch, name) for name in ("bool", "uint8", "int8", "int16", "uint16") if hasattr(torch, name)
)


def look_up_resample_mode(mode: ModeType, spatial_dims: int | None = None) -> str | int:
    """Canonical interpolation mode: ``"nearest"``, ``"bilinear"``, ``"bicubic"`` or ``3``.

    Raises:
        ValueError: when ``mode`` is not one of :py:data:`RESAMPLE_MODES`, or is ``"bicubic"`` in 3D
            (``grid_sample`` has no 3D cubic kernel; use ``mode=3``, cubic B-spline, instead).

    Examples::

        >>> look_up_resample_mode(1), look_up_resample_mode("Nearest"), look_up_resample_mode(3, spatial_dims=3)
        ('bilinear', 'nearest', 3)
    """
    m: str | int | None = None
    if isinstance(mode, str):  # also GridSampleMode members
        name = str(mode.value if hasattr(mode, "value") else mode).lower()
        m = look_up_option(name, ("nearest", "bilinear", "bicubic"), default=None)
    elif isinstance(mode, (int, np.integer)) and not isinstance(mode, (bool, np.bool_)):
        m = look_up_option(int(mode), {0: "nearest", 1: "bilinear", 3: _SPLINE3}, default=None)
    if m is None:  # our message: it names the argument and the 2D-only / spline-order aliases
        raise ValueError(
            f"mode must be one of {RESAMPLE_MODES} ('nearest'/0, 'bilinear'/1, 'bicubic' (2D cubic convolution), "
            f"3 (cubic B-spline, 2D and 3D)), got {mode!r}."
        )
    if m == "bicubic" and spatial_dims is not None and spatial_dims != 2:
        raise ValueError(
            f"mode='bicubic' is only available for 2D images (torch grid_sample), got {spatial_dims} spatial dims; "
            "use mode=3 (cubic B-spline) or 'bilinear' for 3D."
        )
    return m


def _compute_dtype(x: torch.Tensor, mode: str | int) -> torch.dtype:
    if x.dtype == torch.float64:
        return torch.float64
    if x.dtype.is_complex:
        raise TypeError(f"complex images are not supported, got dtype {x.dtype}.")
    if x.dtype.is_floating_point:
        return torch.float32
    if mode == "nearest" and x.dtype not in _SMALL_INTS and x.numel() > 0:
        lo, hi = torch.aminmax(x)
        if max(abs(int(lo)), abs(int(hi))) > 2**24:  # not exactly representable in float32
            return torch.float64
    return torch.float32


def _per_dtype(fn: Callable[[torch.dtype], torch.Tensor]) -> Callable[[torch.dtype], torch.Tensor]:
    cache: dict[torch.dtype, torch.Tensor] = {}

    def get(dtype: torch.dtype) -> torch.Tensor:
        if dtype not in cache:
            cache[dtype] = fn(dtype)
        return cache[dtype]

    return get


def warp_lazy(
    images: Sequence[torch.Tensor],
    modes: Sequence[ModeType],
    padding_modes: Sequence[str],
    spatial_shape: Sequence[int],
    device: torch.device,
    dense: Callable[[torch.dtype], torch.Tensor],
    grid: Callable[[torch.dtype], torch.Tensor],
) -> list[torch.Tensor]:
    """:py:func:`warp` with the field given by functions, called at most once per compute dtype and only if needed.

    ``dense(dtype)`` gives the per-pixel displacement ``(spatial_dims, *spatial_shape)`` (used by ``mode=3``),
    ``grid(dtype)`` its ``grid_sample`` grid ``(1, *spatial_shape, spatial_dims)`` (the other modes), so a caller
    with a cheaper route to the grid (e.g. :py:func:`~.grid.coarse_sampling_grid`) need not build the dense field.

    Args:
        images: tensors ``(C_k, *spatial_shape)`` on ``device``.
        modes: one interpolation mode per image (see :py:data:`RESAMPLE_MODES`).
        padding_modes: one padding mode per image (see :py:data:`RESAMPLE_PADDING_MODES`).
        spatial_shape: the spatial shape of the field.
        device: the device of the field.
        dense: ``dtype -> dense field``.
        grid: ``dtype -> sampling grid``.

    Examples::

        >>> import torch
        >>> img = torch.rand(1, 6, 5)
        >>> built = []
        >>> out = warp_lazy([img], ["nearest"], ["border"], (6, 5), img.device,
        ...                 dense=lambda dt: built.append("dense"), grid=lambda dt: sampling_grid(torch.zeros(2, 6, 5)))
        >>> torch.equal(out[0], img), built  # identity grid; the dense field was never built
        (True, [])
    """
    spatial = tuple(int(s) for s in spatial_shape)
    nd = len(spatial)
    if not (len(images) == len(modes) == len(padding_modes)):
        raise ValueError(
            f"images, modes and padding_modes must have the same length, got {len(images)}, {len(modes)}, "
            f"{len(padding_modes)}."
        )
    canon = [(look_up_resample_mode(m, nd), look_up_resample_padding_mode(p)) for m, p in zip(modes, padding_modes)]
    groups: dict[tuple, list[int]] = {}
    for k, (img, (m, p)) in enumerate(zip(images, canon)):
        if img.ndim != nd + 1 or tuple(img.shape[1:]) != spatial:
            raise ValueError(
                f"every image must be channel-first with spatial shape {spatial} (the displacement field's), "
                f"got shape {tuple(img.shape)} for image {k}."
            )
        if img.device != device:
            raise ValueError(f"image {k} is on {img.device} but the displacement field is on {device}.")
        groups.setdefault((m, p, _compute_dtype(img, m)), []).append(k)
    get_dense, get_grid = _per_dtype(dense), _per_dtype(grid)
    outputs: list[torch.Tensor | None] = [None] * len(images)
    for (m, p, cdt), members in groups.items():
        parts = [images[k].reshape(-1, *spatial).to(cdt) for k in members]
        x = parts[0] if len(parts) == 1 else torch.cat(parts, 0)
        if m == _SPLINE3:
            y = _bspline_resample(x, get_dense(cdt), p)  # p checked above
        else:
            y = threaded_grid_sample(x.unsqueeze(0), get_grid(cdt), str(m), p)[0]
        start = 0
        for k in members:
            img = images[k]
            c = img.reshape(-1, *spatial).shape[0]
            out_dtype = img.dtype if (m == "nearest" or img.dtype.is_floating_point) else torch.float32
            outputs[k] = y[start : start + c].reshape(img.shape).to(out_dtype)
            start += c
    return outputs  # type: ignore[return-value]


def warp(
    images: Sequence[torch.Tensor],
    dense: torch.Tensor,
    modes: Sequence[ModeType],
    padding_modes: Sequence[str],
) -> list[torch.Tensor]:
    """Resample channel-first images at ``x + dense(x)`` sharing one field; one ``grid_sample`` per group.

    Images with the same (mode, padding mode, compute dtype) are concatenated along channels and resampled by
    a single call. ``"nearest"`` keeps the input dtype exactly (no new values, integers included); the
    interpolating modes return the input's floating dtype, or float32 for integer inputs.

    Args:
        images: tensors ``(C_k, *spatial)``, all with the spatial shape of ``dense`` and on its device.
        dense: per-pixel displacement ``(spatial_dims, *spatial)`` in pixels.
        modes: one interpolation mode per image (see :py:data:`RESAMPLE_MODES`).
        padding_modes: one padding mode per image (see :py:data:`RESAMPLE_PADDING_MODES`).

    Examples::

        >>> import torch
        >>> img, lab = torch.rand(1, 8, 6), torch.randint(0, 3, (1, 8, 6))
        >>> shift = torch.zeros(2, 8, 6)
        >>> shift[0] = 1.0  # pull every pixel from one row further down
        >>> out, out_lab = warp([img, lab], shift, ["bilinear", "nearest"], ["border", "border"])
        >>> torch.allclose(out[:, :-1], img[:, 1:]), torch.equal(out_lab[:, :-1], lab[:, 1:]), out_lab.dtype
        (True, True, torch.int64)
    """
    return warp_lazy(
        images,
        modes,
        padding_modes,
        tuple(dense.shape[1:]),
        dense.device,
        lambda dt: dense.to(dt),
        lambda dt: sampling_grid(dense.to(dt)),
    )

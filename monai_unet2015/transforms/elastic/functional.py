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

"""Functional core of the U-Net paper's elastic deformation (Ronneberger et al., MICCAI 2015, section 3.1).

"We generate smooth deformations using random displacement vectors on a coarse 3 by 3 grid. [...] Per-pixel
displacements are then computed using bicubic interpolation." A coarse grid of displacement vectors whose nodes
span the image from the first to the last pixel of every axis is interpolated to a dense, per-pixel displacement
field ``u`` with a separable cubic B-spline (the algorithm of ``scipy.ndimage.zoom(order=3)``), and every image is
resampled at ``x + u(x)``. Everything is pure torch and runs on the device of the input.

The resampling machinery (B-spline matrices, prefilter and resampler, sampling grids, threaded ``grid_sample``,
field inversion, multi-image warp) is :py:mod:`monai_unet2015.transforms.resample`; the names of it that this
module has always exported are re-exported here.

Coordinate conventions: displacements are in pixels, in array-axis order (component ``a`` moves along spatial
axis ``a``); sampling uses ``align_corners=True`` so pixel ``i`` of an axis of length ``n`` sits at the
normalised coordinate ``2 i / (n - 1) - 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from monai.utils import convert_to_tensor, ensure_tuple_rep

from ..resample.bspline import bspline_upsampling_matrix, spline_prefilter
from ..resample.grid import _upsampling_matrices, coarse_sampling_grid, sampling_grid
from ..resample.grid_sample import RESAMPLE_PADDING_MODES
from ..resample.inverse import invert_displacement
from ..resample.warping import (
    RESAMPLE_MODES,
    ModeType,
    look_up_resample_mode,
    look_up_resample_padding_mode,
    warp,
    warp_lazy,
)

__all__ = [
    "ELASTIC_MODES",
    "ELASTIC_PADDING_MODES",
    "look_up_elastic_mode",
    "look_up_elastic_padding_mode",
    "bspline_upsampling_matrix",
    "dense_displacement",
    "sampling_grid",
    "coarse_sampling_grid",
    "spline_prefilter",
    "invert_displacement",
    "warp",
    "grid_elastic",
    "grid_elastic_inverse",
]

#: Accepted interpolation modes (:py:data:`~monai_unet2015.transforms.resample.warping.RESAMPLE_MODES`).
ELASTIC_MODES = RESAMPLE_MODES
#: Accepted padding modes (:py:data:`~monai_unet2015.transforms.resample.grid_sample.RESAMPLE_PADDING_MODES`).
ELASTIC_PADDING_MODES = RESAMPLE_PADDING_MODES
look_up_elastic_mode = look_up_resample_mode
look_up_elastic_padding_mode = look_up_resample_padding_mode


def dense_displacement(displacement: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
    """Interpolate a coarse displacement grid to one displacement vector per pixel (separable cubic B-spline).

    Args:
        displacement: coarse grid ``(spatial_dims, G_0, ..., G_{d-1})`` in pixels; component ``a`` moves along
            spatial axis ``a``; node ``k`` of axis ``a`` sits at pixel ``k (n_a - 1) / (G_a - 1)``.
        spatial_shape: ``(n_0, ..., n_{d-1})``, the image size.

    Returns:
        ``(spatial_dims, n_0, ..., n_{d-1})`` tensor, same dtype and device as ``displacement``; equal to
        ``scipy.ndimage.zoom(displacement[a], np.divide(spatial_shape, grid_shape), order=3)`` per component.

    Examples::

        >>> import torch
        >>> disp = torch.zeros(2, 3, 3)
        >>> disp[0, 1, 1] = 4.0  # the centre node moves 4 px along the first axis
        >>> u = dense_displacement(disp, (5, 7))
        >>> u.shape, round(float(u[0, 2, 3]), 4), round(float(u[0, 0, 0]), 4)  # the nodes are interpolated
        (torch.Size([2, 5, 7]), 4.0, 0.0)
    """
    _, mats = _upsampling_matrices(displacement, spatial_shape)  # checks the shapes, as coarse_sampling_grid does
    out = displacement
    for a, m in enumerate(mats):
        out = torch.movedim(torch.tensordot(out, m, dims=([1 + a], [1])), -1, 1 + a)
    return out.contiguous()


def _as_float_displacement(displacement: torch.Tensor) -> torch.Tensor:
    # a plain floating tensor (MetaTensor unwrapped, arrays and nested sequences converted, integers to float32)
    disp = convert_to_tensor(displacement, wrap_sequence=True, track_meta=False)
    if not isinstance(disp, torch.Tensor):  # strings and object arrays, which convert_to_tensor passes through
        raise TypeError(f"displacement must be a tensor or array of numbers, got {type(displacement).__name__}.")
    return disp if disp.dtype.is_floating_point else disp.float()


def grid_elastic(
    images: torch.Tensor | Sequence[torch.Tensor],
    displacement: torch.Tensor,
    mode: ModeType | Sequence[ModeType] = "bilinear",
    padding_mode: str | Sequence[str] = "reflection",
) -> torch.Tensor | list[torch.Tensor]:
    """Deform images with the paper's elastic deformation given its coarse displacement grid.

    The coarse grid is interpolated once (separable cubic B-spline) to a dense field shared by all images, which
    are resampled at ``x + u(x)``. A displacement that is exactly zero returns the inputs unchanged (no
    resampling, so the identity is exact).

    Args:
        images: one channel-first tensor ``(C, *spatial)`` or a sequence of them with the same spatial shape,
            on one device (the computation runs there).
        displacement: coarse grid ``(spatial_dims, G_0, ..., G_{d-1})`` in pixels (see :py:func:`dense_displacement`).
        mode: interpolation mode, or one per image: ``"nearest"``/``0``, ``"bilinear"``/``1``, ``"bicubic"``
            (2D, cubic convolution), ``3`` (cubic B-spline, 2D and 3D).
        padding_mode: ``"reflection"`` (default), ``"border"`` or ``"zeros"``, or one per image.

    Returns:
        the deformed tensor, or a list matching ``images`` (plain tensors; the transforms keep ``MetaTensor``).

    Examples::

        >>> import torch
        >>> img = torch.rand(1, 64, 48)
        >>> disp = torch.zeros(2, 3, 3)
        >>> disp[0, 1, 1] = 4.0  # push the centre node 4 px along the first axis
        >>> out, lab = grid_elastic([img, (img > 0.5).long()], disp, mode=("bilinear", "nearest"))
        >>> out.shape, lab.dtype
        (torch.Size([1, 64, 48]), torch.int64)
        >>> torch.equal(grid_elastic(img, torch.zeros(2, 3, 3)), img)
        True
    """
    single = isinstance(images, torch.Tensor)
    imgs = [images] if single else list(images)  # type: ignore[list-item]
    if not imgs:
        return []
    for k, img in enumerate(imgs):
        if not isinstance(img, torch.Tensor):
            raise TypeError(f"images must be torch tensors, got {type(img).__name__} for image {k}.")
        if img.ndim not in (3, 4):
            raise ValueError(
                f"images must be channel-first 2D (C, H, W) or 3D (C, D, H, W), got shape {tuple(img.shape)}."
            )
    # plain tensors inside (MetaTensor's per-op bookkeeping is not needed here); the transforms restore the meta
    imgs = [convert_to_tensor(x, track_meta=False) for x in imgs]
    spatial = tuple(imgs[0].shape[1:])
    device = imgs[0].device
    modes = ensure_tuple_rep(mode, len(imgs))
    pads = ensure_tuple_rep(padding_mode, len(imgs))
    for m, p in zip(modes, pads):  # validate even when nothing is resampled
        look_up_elastic_mode(m, len(spatial))
        look_up_elastic_padding_mode(p)
    disp = _as_float_displacement(displacement)
    if not bool(torch.isfinite(disp).all()):
        raise ValueError("displacement must be finite.")
    if not bool(disp.any()):
        out = list(imgs)
    else:
        disp = disp.to(device=device)
        out = warp_lazy(
            imgs,
            modes,
            pads,
            spatial,
            device,
            dense=lambda dt: dense_displacement(disp.to(dt), spatial),  # mode 3 only
            grid=lambda dt: coarse_sampling_grid(disp.to(dt), spatial),  # the same field, as one matmul
        )
    return out[0] if single else out


def grid_elastic_inverse(
    image: torch.Tensor, displacement: torch.Tensor, mode: ModeType = "bilinear", padding_mode: str = "reflection"
) -> torch.Tensor:
    """Approximately undo :py:func:`grid_elastic` with the same coarse ``displacement``.

    Exact up to interpolation where the forward deformation did not pull content from outside the image
    (content that left the field of view cannot be restored; the padding mode fills it). The dense field is
    inverted by fixed-point iteration (:py:func:`~monai_unet2015.transforms.resample.inverse.invert_displacement`).

    Examples::

        >>> import torch
        >>> yy, xx = torch.meshgrid(torch.linspace(0, 3, 32), torch.linspace(0, 3, 32), indexing="ij")
        >>> img = (torch.sin(yy) * torch.cos(xx))[None]  # a smooth image
        >>> disp = torch.zeros(2, 3, 3)
        >>> disp[1, 1, 1] = 2.0  # the centre node moves 2 px along the last axis
        >>> out = grid_elastic(img, disp, mode=3)
        >>> back = grid_elastic_inverse(out, disp, mode=3)
        >>> bool((out - img).abs().max() > 0.1), bool((back - img).abs().max() < 1e-2)
        (True, True)
    """
    disp = _as_float_displacement(displacement)
    image = convert_to_tensor(image, track_meta=False)
    nd = image.ndim - 1
    look_up_elastic_mode(mode, nd)
    look_up_elastic_padding_mode(padding_mode)
    if not bool(disp.any()):
        return image
    cdt = torch.float64 if image.dtype == torch.float64 else torch.float32
    dense = dense_displacement(disp.to(device=image.device, dtype=cdt), image.shape[1:])
    return warp([image], invert_displacement(dense), [mode], [padding_mode])[0]

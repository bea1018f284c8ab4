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

"""Array transforms for the U-Net paper's elastic deformation: :py:class:`GridElastic`, :py:class:`RandGridElastic`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms.inverse import InvertibleTransform
from monai.transforms.transform import RandomizableTransform
from monai.utils import GridSampleMode, GridSamplePadMode, TraceKeys, TransformBackends, ensure_tuple_rep
from monai.utils.type_conversion import convert_to_dst_type, convert_to_tensor

from .functional import (
    _as_float_displacement,
    grid_elastic,
    grid_elastic_inverse,
    look_up_elastic_mode,
    look_up_elastic_padding_mode,
)

__all__ = ["GridElastic", "RandGridElastic", "elastic_sigma_in_pixels", "as_coarse_displacement"]


def _per_axis(value: Any, spatial_dims: int, name: str) -> tuple[float, ...]:
    # one float per spatial axis (monai's ensure_tuple_rep), with an error that names the argument
    if not isinstance(value, (bool, np.bool_, str)):
        try:
            return tuple(float(v) for v in ensure_tuple_rep(value, spatial_dims))
        except (TypeError, ValueError):
            pass
    raise ValueError(f"{name} must be a number or a sequence of {spatial_dims} numbers, got {value!r}.")


def elastic_sigma_in_pixels(
    sigma: float | Sequence[float], spatial_dims: int, spacing: float | Sequence[float] | None = None
) -> tuple[float, ...]:
    """Per-axis standard deviation of the node displacements in pixels.

    Args:
        sigma: one value or one per spatial axis; pixels when ``spacing`` is None, else physical units.
        spatial_dims: 2 or 3.
        spacing: pixel size per axis (one value or one per axis), in the physical unit of ``sigma``.

    Examples::

        >>> elastic_sigma_in_pixels(10.0, 2)
        (10.0, 10.0)
        >>> elastic_sigma_in_pixels(2.0, 3, spacing=(1.0, 0.5, 0.5))  # 2 um on a 1 x 0.5 x 0.5 um grid
        (2.0, 4.0, 4.0)
    """
    sig = _per_axis(sigma, spatial_dims, "sigma")
    if any(not math.isfinite(s) or s < 0 for s in sig):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}.")
    if spacing is None:
        return sig
    sp = _per_axis(spacing, spatial_dims, "spacing")
    if any(not math.isfinite(s) or s <= 0 for s in sp):
        raise ValueError(f"spacing must be finite and > 0, got {spacing!r}.")
    return tuple(s / p for s, p in zip(sig, sp))


def as_coarse_displacement(displacement: NdarrayOrTensor, spatial_dims: int) -> torch.Tensor:
    """Validate a coarse displacement grid ``(spatial_dims, G_0, ..., G_{d-1})`` (pixels) and return a float tensor."""
    if not isinstance(displacement, (torch.Tensor, np.ndarray, Sequence)):
        raise TypeError(f"displacement must be a tensor or array, got {type(displacement).__name__}.")
    disp = _as_float_displacement(displacement)
    if disp.ndim != spatial_dims + 1 or disp.shape[0] != spatial_dims or any(g < 2 for g in disp.shape[1:]):
        raise ValueError(
            f"displacement must have shape (spatial_dims, G_0, ..., G_d-1) = ({spatial_dims}, >=2, ...) for a "
            f"{spatial_dims}D image, got {tuple(disp.shape)}."
        )
    return disp


def _check_image(img: Any) -> None:
    if not isinstance(img, (torch.Tensor, np.ndarray)):
        raise TypeError(f"img must be a channel-first torch.Tensor or numpy array, got {type(img).__name__}.")
    if img.ndim not in (3, 4):
        raise ValueError(f"img must be channel-first 2D (C, H, W) or 3D (C, D, H, W), got shape {tuple(img.shape)}.")
    if isinstance(img, MetaTensor) and img.pending_operations:
        warnings.warn("MetaTensor img has pending operations, transform may return incorrect results.")


class GridElastic(InvertibleTransform):
    """Deform an image with a given coarse grid of displacement vectors (U-Net paper, section 3.1).

    The grid nodes span the image from the first to the last pixel of every axis; the node displacements (in
    pixels) are interpolated to every pixel with a separable cubic B-spline (bicubic in 2D, tricubic in 3D,
    mirror boundary, the algorithm of ``scipy.ndimage.zoom(order=3)``), and the image is resampled at
    ``x + u(x)`` on its own device. This is the deterministic half of :py:class:`RandGridElastic`: apply a
    recorded draw to another image (e.g. a weight map computed later) with
    ``GridElastic(**rand.get_parameters())``. A zero displacement returns the image unchanged.

    Args:
        displacement: coarse grid ``(spatial_dims, G_0, ..., G_{d-1})`` in pixels, component ``a`` along spatial
            axis ``a``; may also be given per call.
        mode: ``"bilinear"``/``1`` (default), ``"nearest"``/``0`` (labels: no new values, dtype kept),
            ``"bicubic"`` (2D only, cubic convolution of ``grid_sample``) or ``3`` (cubic B-spline, 2D and 3D,
            identical to ``scipy.ndimage.map_coordinates(order=3, mode="mirror")``).
        padding_mode: ``"reflection"`` (default: mirror about the border pixels), ``"border"`` or ``"zeros"``.
        device: device to compute on (the output stays there); default: the image's device.

    Examples::

        >>> import torch
        >>> disp = torch.zeros(2, 3, 3)
        >>> disp[:, 1, 1] = torch.tensor([5.0, -3.0])  # move the centre node
        >>> out = GridElastic(disp, mode="bilinear")(torch.rand(1, 64, 64))
        >>> out.shape
        torch.Size([1, 64, 64])
    """

    backend = [TransformBackends.TORCH]

    def __init__(
        self,
        displacement: NdarrayOrTensor | None = None,
        mode: str | int = GridSampleMode.BILINEAR,
        padding_mode: str = GridSamplePadMode.REFLECTION,
        device: torch.device | str | None = None,
    ) -> None:
        self.displacement = None if displacement is None else as_coarse_displacement(displacement, len(displacement))
        self.mode = look_up_elastic_mode(mode)
        self.padding_mode = look_up_elastic_padding_mode(padding_mode)
        self.device = device

    def __call__(
        self,
        img: NdarrayOrTensor,
        displacement: NdarrayOrTensor | None = None,
        mode: str | int | None = None,
        padding_mode: str | None = None,
    ) -> torch.Tensor:
        """
        Args:
            img: channel-first image ``(C, H, W)`` or ``(C, D, H, W)``.
            displacement: overrides the coarse grid given at construction.
            mode: overrides ``self.mode`` for this call.
            padding_mode: overrides ``self.padding_mode`` for this call.
        """
        _check_image(img)
        disp = self.displacement if displacement is None else displacement
        if disp is None:
            raise ValueError("displacement is required: give it to GridElastic(...) or to the call.")
        nd = img.ndim - 1
        disp_t = as_coarse_displacement(disp, nd)
        mode_ = look_up_elastic_mode(self.mode if mode is None else mode, nd)
        padding_ = look_up_elastic_padding_mode(self.padding_mode if padding_mode is None else padding_mode)
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        if self.device is not None:
            img_t = img_t.to(self.device)
        out = grid_elastic(convert_to_tensor(img_t, track_meta=False), disp_t, mode_, padding_)
        out, *_ = convert_to_dst_type(out, dst=img_t, dtype=out.dtype, device=out.device)
        self.push_transform(
            out,
            orig_size=tuple(img_t.shape[1:]),
            extra_info={"displacement": disp_t.detach().cpu(), "mode": mode_, "padding_mode": padding_},
        )
        return out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        """Approximately undo the deformation recorded in ``data.applied_operations`` (fixed-point inversion).

        Content that the forward deformation pulled in from outside the image (through the padding) cannot be
        recovered; elsewhere the result matches the original up to interpolation.
        """
        transform = self.pop_transform(data)
        extra = transform[TraceKeys.EXTRA_INFO]
        plain = convert_to_tensor(data, track_meta=False)
        out = grid_elastic_inverse(plain, extra["displacement"], extra["mode"], extra["padding_mode"])
        out, *_ = convert_to_dst_type(out, dst=data, dtype=out.dtype, device=out.device)
        return out


class RandGridElastic(RandomizableTransform, InvertibleTransform):
    """Random elastic deformation of the U-Net paper (Ronneberger et al., MICCAI 2015, section 3.1).

    "We generate smooth deformations using random displacement vectors on a coarse 3 by 3 grid. The
    displacements are sampled from a Gaussian distribution with 10 pixels standard deviation. Per-pixel
    displacements are then computed using bicubic interpolation." The grid nodes span the image from corner to
    corner (3 x 3 in 2D, 3 x 3 x 3 in 3D by default), every node and every component is drawn independently
    from ``N(0, sigma^2)``, and the node displacements are interpolated with a separable cubic B-spline. Unlike
    MONAI's ``Rand2DElastic`` there is no extra outer control point and no rescaling: ``sigma=0`` is the identity.

    The random draw is separate from its application: ``randomize(spatial_shape)`` draws the coarse grid from
    ``self.R``, ``__call__(img, randomize=False)`` re-applies the last draw, and ``get_parameters()`` returns it
    as keyword arguments of :py:class:`GridElastic`. All computation is torch on the image's device.

    Args:
        sigma: standard deviation of the node displacements, one value or one per spatial axis; pixels, or the
            physical unit of ``spacing`` when it is given. Default 10 (the paper's 10 px).
        grid_size: number of grid nodes per axis (>= 2), one value or one per axis. Default 3.
        spacing: pixel size per axis in the unit of ``sigma`` (one value or one per axis); None: ``sigma`` in
            pixels.
        prob: probability of deforming.
        mode: interpolation mode, see :py:class:`GridElastic`. Default ``"bilinear"``.
        padding_mode: ``"reflection"`` (default), ``"border"`` or ``"zeros"``.
        device: device to compute on; default: the image's device.

    Examples::

        >>> import torch
        >>> t = RandGridElastic(sigma=10.0, prob=1.0, mode=3)
        >>> _ = t.set_random_state(seed=0)
        >>> img = torch.rand(1, 96, 96)
        >>> out = t(img)
        >>> replay = GridElastic(**t.get_parameters())  # the same draw, e.g. for a weight map
        >>> torch.equal(replay(img), out)
        True
    """

    backend = GridElastic.backend

    def __init__(
        self,
        sigma: float | Sequence[float] = 10.0,
        grid_size: int | Sequence[int] = 3,
        spacing: float | Sequence[float] | None = None,
        prob: float = 0.1,
        mode: str | int = GridSampleMode.BILINEAR,
        padding_mode: str = GridSamplePadMode.REFLECTION,
        device: torch.device | str | None = None,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        # validate what does not depend on the number of spatial dims now, the per-axis lengths at the call
        for name, value, low in (("sigma", sigma, 0.0), ("spacing", spacing, None)):
            if value is None:
                continue
            try:
                arr = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                arr = np.asarray([np.nan])
            bad = arr.ndim > 1 or isinstance(value, (bool, str)) or not np.isfinite(arr).all()
            if not bad:
                bad = bool((arr < 0).any()) if low is not None else bool((arr <= 0).any())
            if bad:
                rule = ">= 0" if low is not None else "> 0"
                raise ValueError(f"{name} must be a finite number {rule} or a sequence of them, got {value!r}.")
        if isinstance(grid_size, Sequence):
            sizes = tuple(grid_size)
        else:
            sizes = (grid_size,)
        if any(not isinstance(g, (int, np.integer)) or isinstance(g, bool) or g < 2 for g in sizes):
            raise ValueError(f"grid_size must be an integer >= 2 or a sequence of them, got {grid_size!r}.")
        self.sigma = sigma
        self.grid_size = grid_size
        self.spacing = spacing
        self.elastic = GridElastic(mode=mode, padding_mode=padding_mode, device=device)
        self.displacement: torch.Tensor | None = None

    def _grid_shape(self, spatial_dims: int) -> tuple[int, ...]:
        try:
            return tuple(int(g) for g in ensure_tuple_rep(self.grid_size, spatial_dims))
        except ValueError:
            raise ValueError(
                f"grid_size must have one value per spatial axis ({spatial_dims}), got {self.grid_size!r}."
            ) from None

    def zero_displacement(self, spatial_dims: int) -> torch.Tensor:
        """A zero coarse grid of this transform's grid shape (the identity)."""
        return torch.zeros((spatial_dims, *self._grid_shape(spatial_dims)))

    def randomize(self, spatial_shape: Sequence[int]) -> None:
        """Decide whether to deform and draw the coarse displacement grid for an image of ``spatial_shape``.

        Only ``len(spatial_shape)`` matters: the grid spans any image from corner to corner, so a draw can be
        applied to an image of another size (displacements stay in pixels).
        """
        nd = len(spatial_shape)
        if nd not in (2, 3):
            raise ValueError(f"spatial_shape must have 2 or 3 entries, got {tuple(spatial_shape)}.")
        sig = elastic_sigma_in_pixels(self.sigma, nd, self.spacing)
        super().randomize(None)
        if not self._do_transform:  # no draw (as MONAI's random transforms): the identity, a zero grid
            self.displacement = self.zero_displacement(nd)
            return
        draw = self.R.standard_normal(size=(nd, *self._grid_shape(nd)))
        draw *= np.asarray(sig).reshape((nd,) + (1,) * nd)
        self.displacement = torch.as_tensor(draw, dtype=torch.float32)

    def get_parameters(self) -> dict[str, Any]:
        """The last draw as ``GridElastic`` keyword arguments (a zero grid when the last call did not deform)."""
        if self.displacement is None:
            raise RuntimeError("no draw yet: call the transform or randomize(spatial_shape) first.")
        return {
            "displacement": self.displacement.clone(),
            "mode": self.elastic.mode,
            "padding_mode": self.elastic.padding_mode,
        }

    def __call__(
        self,
        img: NdarrayOrTensor,
        mode: str | int | None = None,
        padding_mode: str | None = None,
        randomize: bool = True,
    ) -> torch.Tensor:
        """
        Args:
            img: channel-first image ``(C, H, W)`` or ``(C, D, H, W)``.
            mode: overrides the interpolation mode for this call.
            padding_mode: overrides the padding mode for this call.
            randomize: draw a new grid first (default); False re-applies the last draw.
        """
        _check_image(img)
        if randomize:
            self.randomize(img.shape[1:])
        elif self.displacement is None:
            raise RuntimeError("randomize=False but there is no previous draw: call randomize(spatial_shape) first.")
        if self._do_transform:
            out = self.elastic(img, displacement=self.displacement, mode=mode, padding_mode=padding_mode)
        else:
            out = convert_to_tensor(img, track_meta=get_track_meta())
            if self.elastic.device is not None:
                out = out.to(self.elastic.device)
        self.push_transform(out, replace=True)
        return out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        """Approximately undo the last recorded deformation of ``data`` (see :py:meth:`GridElastic.inverse`)."""
        transform = self.pop_transform(data)
        if not transform[TraceKeys.DO_TRANSFORM]:
            return data
        data.applied_operations.append(transform[TraceKeys.EXTRA_INFO])  # type: ignore[union-attr]
        return self.elastic.inverse(data)

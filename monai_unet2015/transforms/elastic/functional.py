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

A coarse grid of displacement vectors whose nodes span the image from the first to the last pixel of every
axis is interpolated to a dense, per-pixel displacement field with a separable cubic B-spline (the same
algorithm as ``scipy.ndimage.zoom(order=3)``), and every image is resampled at ``x + u(x)`` with
``torch.nn.functional.grid_sample``. Everything is pure torch and runs on the device of the input.

Coordinate conventions: displacements are in pixels, in array-axis order (component ``a`` moves along spatial
axis ``a``); sampling uses ``align_corners=True`` so pixel ``i`` of an axis of length ``n`` sits at the
normalised coordinate ``2 i / (n - 1) - 1``.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from typing import Callable, Union

import numpy as np
import torch
import torch.nn.functional as F

from monai.data import MetaTensor

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

#: Accepted interpolation modes. ``0`` / ``1`` are aliases of ``"nearest"`` / ``"bilinear"`` (spline orders, as in
#: MONAI's ``Resample``); ``3`` is cubic B-spline interpolation (``scipy.ndimage.map_coordinates(order=3)``).
ELASTIC_MODES = ("nearest", "bilinear", "bicubic", 0, 1, 3)
#: Accepted padding modes (``torch.nn.functional.grid_sample``); ``"reflection"`` mirrors about the border pixel
#: centres (SciPy's ``mode="mirror"``).
ELASTIC_PADDING_MODES = ("zeros", "border", "reflection")

ModeType = Union[str, int]
_SPLINE3 = 3
# cubic B-spline prefilter: pole z = sqrt(3) - 2, impulse response sqrt(3) z^|k| truncated at |k| <= 14
# (relative truncation error ~1e-8), applied blockwise as a banded matrix product.
_POLE = math.sqrt(3.0) - 2.0
_TAPS = 14
_BLOCK = 64
# integer dtypes whose values are all exactly representable in float32
_SMALL_INTS = tuple(
    getattr(torch, name) for name in ("bool", "uint8", "int8", "int16", "uint16") if hasattr(torch, name)
)


def look_up_elastic_mode(mode: ModeType, spatial_dims: int | None = None) -> str | int:
    """Canonical interpolation mode: ``"nearest"``, ``"bilinear"``, ``"bicubic"`` or ``3``.

    Raises:
        ValueError: when ``mode`` is not one of :py:data:`ELASTIC_MODES`, or is ``"bicubic"`` in 3D
            (``grid_sample`` has no 3D cubic kernel; use ``mode=3``, cubic B-spline, instead).
    """
    m: str | int | None = None
    if isinstance(mode, str):  # also GridSampleMode members
        m = str(mode.value if hasattr(mode, "value") else mode).lower()
        if m not in ("nearest", "bilinear", "bicubic"):
            m = None
    elif isinstance(mode, (int, np.integer)) and not isinstance(mode, (bool, np.bool_)):
        m = {0: "nearest", 1: "bilinear", 3: _SPLINE3}.get(int(mode))
    if m is None:
        raise ValueError(
            f"mode must be one of {ELASTIC_MODES} ('nearest'/0, 'bilinear'/1, 'bicubic' (2D cubic convolution), "
            f"3 (cubic B-spline, 2D and 3D)), got {mode!r}."
        )
    if m == "bicubic" and spatial_dims is not None and spatial_dims != 2:
        raise ValueError(
            f"mode='bicubic' is only available for 2D images (torch grid_sample), got {spatial_dims} spatial dims; "
            "use mode=3 (cubic B-spline) or 'bilinear' for 3D."
        )
    return m


def look_up_elastic_padding_mode(padding_mode: str) -> str:
    """Canonical padding mode (one of :py:data:`ELASTIC_PADDING_MODES`); ``ValueError`` otherwise."""
    p = str(padding_mode.value if hasattr(padding_mode, "value") else padding_mode).lower()
    if not isinstance(padding_mode, str) or p not in ELASTIC_PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {ELASTIC_PADDING_MODES}, got {padding_mode!r}.")
    return p


@functools.lru_cache(maxsize=64)
def _bspline_matrix64(size: int, grid_points: int) -> torch.Tensor:
    # B-spline interpolation with mirror (whole-sample symmetric) boundary: the samples extended as
    # a b c b | a b c b ... are periodic with period L = 2 (G - 1); solve the periodic collocation system
    # B coeff = E values, then evaluate the cubic B-spline basis at every output position.
    g = grid_points
    period = 2 * (g - 1)
    j = torch.arange(period)
    ext = torch.zeros(period, g, dtype=torch.float64)
    ext[j, torch.where(j < g, j, period - j)] = 1.0
    colloc = torch.zeros(period, period, dtype=torch.float64)
    third = torch.full((period,), 1.0 / 6.0, dtype=torch.float64)
    colloc.index_put_((j, j), 4.0 * third, accumulate=True)
    colloc.index_put_((j, (j + 1) % period), third, accumulate=True)
    colloc.index_put_((j, (j - 1) % period), third, accumulate=True)
    coeff = torch.linalg.solve(colloc, ext)  # (L, G)
    n = torch.arange(size, dtype=torch.float64)
    x = n * (g - 1) / (size - 1) if size > 1 else torch.zeros_like(n)
    i = x.floor()
    t = x - i
    basis = torch.stack(
        [(1 - t) ** 3 / 6, (4 - 6 * t**2 + 3 * t**3) / 6, (1 + 3 * t + 3 * t**2 - 3 * t**3) / 6, t**3 / 6], dim=1
    )
    idx = (i.long()[:, None] + torch.arange(-1, 3)[None, :]) % period
    evaluate = torch.zeros(size, period, dtype=torch.float64).scatter_add_(1, idx, basis)
    return evaluate @ coeff


def bspline_upsampling_matrix(
    size: int, grid_points: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """The ``(size, grid_points)`` matrix ``M`` of 1-D cubic B-spline interpolation from a coarse grid to pixels.

    The ``grid_points`` nodes are equally spaced from pixel ``0`` to pixel ``size - 1`` (corner to corner);
    ``M @ values`` is the cubic B-spline interpolant of ``values`` with mirror boundary conditions evaluated at
    every pixel, identical to ``scipy.ndimage.zoom(values, size / grid_points, order=3)`` (``grid_mode=False``).
    Applying one matrix per axis gives the separable bi/tricubic B-spline interpolation of a coarse grid.

    Args:
        size: number of pixels along the axis (>= 1).
        grid_points: number of coarse grid nodes along the axis (>= 2).
        dtype: dtype of the returned matrix.
        device: device of the returned matrix.

    Examples::

        >>> m = bspline_upsampling_matrix(5, 3)
        >>> m.shape
        torch.Size([5, 3])
        >>> [round(v, 4) for v in m.sum(1).tolist()]  # interpolation reproduces constants
        [1.0, 1.0, 1.0, 1.0, 1.0]
        >>> torch.allclose(m[2], torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)  # pixel 2 is the middle node
        True
    """
    if int(size) < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}.")
    if int(grid_points) < 2:
        raise ValueError(f"grid_points must be an integer >= 2 (nodes at both ends of the axis), got {grid_points!r}.")
    return _bspline_matrix64(int(size), int(grid_points)).to(device=device, dtype=dtype, copy=True)


def dense_displacement(displacement: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
    """Interpolate a coarse displacement grid to one displacement vector per pixel (separable cubic B-spline).

    Args:
        displacement: coarse grid ``(spatial_dims, G_0, ..., G_{d-1})`` in pixels; component ``a`` moves along
            spatial axis ``a``; node ``k`` of axis ``a`` sits at pixel ``k (n_a - 1) / (G_a - 1)``.
        spatial_shape: ``(n_0, ..., n_{d-1})``, the image size.

    Returns:
        ``(spatial_dims, n_0, ..., n_{d-1})`` tensor, same dtype and device as ``displacement``; equal to
        ``scipy.ndimage.zoom(displacement[a], np.divide(spatial_shape, grid_shape), order=3)`` per component.
    """
    spatial_shape = tuple(int(s) for s in spatial_shape)
    nd = len(spatial_shape)
    if displacement.ndim != nd + 1 or displacement.shape[0] != nd:
        raise ValueError(
            f"displacement must have shape (spatial_dims, *grid_shape) = ({nd}, ...) for spatial_shape "
            f"{spatial_shape}, got {tuple(displacement.shape)}."
        )
    out = displacement
    for a in range(nd):
        m = bspline_upsampling_matrix(spatial_shape[a], displacement.shape[1 + a], out.dtype, out.device)
        out = torch.movedim(torch.tensordot(out, m, dims=([1 + a], [1])), -1, 1 + a)
    return out.contiguous()


def sampling_grid(dense: torch.Tensor) -> torch.Tensor:
    """``grid_sample`` grid ``(1, *spatial, spatial_dims)`` (``align_corners=True``) for pixel positions ``x + u(x)``.

    Args:
        dense: per-pixel displacement ``(spatial_dims, *spatial)`` in pixels, array-axis order.
    """
    nd = dense.shape[0]
    spatial = dense.shape[1:]
    grid = torch.empty((1, *spatial, nd), dtype=dense.dtype, device=dense.device)
    for a in range(nd):
        n = spatial[a]
        scale = 2.0 / (n - 1) if n > 1 else 0.0
        shape = [1] * nd
        shape[a] = n
        base = torch.arange(n, dtype=dense.dtype, device=dense.device).mul_(scale).sub_(1.0).view(shape)
        # grid_sample's last dimension is (x, y[, z]) = reversed array axes
        torch.add(base, dense[a], alpha=scale, out=grid[0, ..., nd - 1 - a])
    return grid


def coarse_sampling_grid(displacement: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
    """``sampling_grid(dense_displacement(displacement, spatial_shape))`` computed as one matrix product.

    The identity part of the grid is linear along one axis, so it folds into the separable B-spline
    interpolation as one extra node per axis (an "augmented" coarse grid); the last axis and the
    ``(x, y[, z])`` interleaving of ``grid_sample``'s layout are produced by a single ``matmul`` that writes the
    contiguous grid directly, without materialising the dense field.
    """
    spatial = tuple(int(s) for s in spatial_shape)
    nd = len(spatial)
    if displacement.ndim != nd + 1 or displacement.shape[0] != nd:
        raise ValueError(
            f"displacement must have shape (spatial_dims, *grid_shape) = ({nd}, ...) for spatial_shape "
            f"{spatial}, got {tuple(displacement.shape)}."
        )
    dt, dev = displacement.dtype, displacement.device
    grid_shape = tuple(displacement.shape[1:])
    scales = [2.0 / (n - 1) if n > 1 else 0.0 for n in spatial]
    mats = [bspline_upsampling_matrix(n, g, dt, dev) for n, g in zip(spatial, grid_shape)]
    ones = [torch.ones(n, 1, dtype=dt, device=dev) for n in spatial]
    lins = [(torch.arange(n, dtype=dt, device=dev) * s - 1.0).view(n, 1) for n, s in zip(spatial, scales)]
    last_k = grid_shape[-1] + 1
    heads = []
    tail = torch.zeros(nd * last_k, spatial[-1], nd, dtype=dt, device=dev)
    for c in range(nd):  # grid component c moves along array axis a = nd - 1 - c
        a = nd - 1 - c
        aug = [torch.cat([mats[b], lins[b] if b == a else ones[b]], 1) for b in range(nd)]
        coarse = torch.zeros(tuple(g + 1 for g in grid_shape), dtype=dt, device=dev)
        coarse[tuple(slice(0, g) for g in grid_shape)] = displacement[a] * scales[a]
        coarse[tuple(g for g in grid_shape)] = 1.0
        head = coarse
        for b in range(nd - 1):  # contract all but the last axis: (S_0, ..., S_{d-2}, G_{d-1} + 1)
            head = torch.movedim(torch.tensordot(head, aug[b], dims=([b], [1])), -1, b)
        heads.append(head.reshape(-1, last_k))
        tail[c * last_k : (c + 1) * last_k, :, c] = aug[nd - 1].T
    grid = torch.cat(heads, 1) @ tail.view(nd * last_k, spatial[-1] * nd)
    return grid.view(1, *spatial, nd)


def _grid_sample(x: torch.Tensor, grid: torch.Tensor, mode: str, padding_mode: str) -> torch.Tensor:
    """``grid_sample(align_corners=True)`` that also uses the CPU threads for a single image.

    ATen's CPU kernels parallelise over the batch only, so a single image runs on one core. On CPU with
    ``k > 1`` intra-op threads the output rows are split into ``k`` equal blocks, passed as a batch of ``k``
    (the input repeated); the result is identical.
    """
    threads = torch.get_num_threads() if x.device.type == "cpu" else 1
    rows = grid.shape[1]
    k = min(threads, rows)
    if k <= 1 or x.shape[0] != 1:
        return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=True)
    per = rows // k
    main = grid[:, : per * k].reshape(k, per, *grid.shape[2:])
    batch = x.expand(k, *x.shape[1:]).contiguous()
    y = F.grid_sample(batch, main, mode=mode, padding_mode=padding_mode, align_corners=True)
    y = y.transpose(0, 1).reshape(1, x.shape[1], per * k, *grid.shape[2:-1])
    if per * k == rows:
        return y
    rest = F.grid_sample(x, grid[:, per * k :], mode=mode, padding_mode=padding_mode, align_corners=True)
    return torch.cat([y, rest], 2)


def _mirror_index(index: torch.Tensor, n: int) -> torch.Tensor:
    if n == 1:
        return torch.zeros_like(index)
    period = 2 * (n - 1)
    r = index.remainder(period)
    return torch.where(r >= n, period - r, r)


@functools.lru_cache(maxsize=16)
def _prefilter_band(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    k = torch.arange(_BLOCK + 2 * _TAPS)[:, None] - _TAPS - torch.arange(_BLOCK)[None, :]
    band = math.sqrt(3.0) * torch.full(k.shape, _POLE, dtype=torch.float64) ** k.abs()
    return band.masked_fill_(k.abs() > _TAPS, 0.0).to(device=device, dtype=dtype)


def spline_prefilter(x: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """Cubic B-spline coefficients (mirror boundary) of ``x`` along its last ``spatial_dims`` axes.

    Same result as ``scipy.ndimage.spline_filter(x, order=3, mode="mirror")`` per channel (up to ~1e-7
    relative truncation of the recursive filter); pure torch, on ``x``'s device.
    """
    for dim in range(x.ndim - spatial_dims, x.ndim):
        n = x.shape[dim]
        if n == 1:  # the spline of a single sample is constant: coefficient == value
            continue
        blocks = -(-n // _BLOCK)
        idx = _mirror_index(torch.arange(-_TAPS, blocks * _BLOCK + _TAPS, device=x.device), n)
        xp = x.index_select(dim, idx).movedim(dim, -1)
        lead = xp.shape[:-1]
        windows = xp.unfold(-1, _BLOCK + 2 * _TAPS, _BLOCK).reshape(-1, _BLOCK + 2 * _TAPS)  # one copy, then one mm
        y = (windows @ _prefilter_band(x.dtype, x.device)).view(*lead, blocks * _BLOCK)
        x = y[..., :n].movedim(-1, dim)
    return x.contiguous()


def _spline3_resample(x: torch.Tensor, dense: torch.Tensor, padding_mode: str) -> torch.Tensor:
    # cubic B-spline evaluation as 2**d (bi/tri)linear look-ups of the spline coefficients (all B-spline weights
    # are positive, so each pair of taps along an axis folds into one linear tap; Sigg & Hadwiger, GPU Gems 2).
    # The coefficients always extend by mirroring (consistent with the prefilter, so the spline interpolates the
    # pixels up to the border); ``padding_mode`` only decides the value at positions outside the image:
    # "reflection" mirrors them (SciPy mode="mirror"), "border" clamps them to the border, "zeros" gives 0
    # (SciPy mode="constant").
    nd = dense.shape[0]
    spatial = dense.shape[1:]
    coeff = spline_prefilter(x, nd)
    per_axis = []
    inside: torch.Tensor | None = None
    for a in range(nd):
        n = spatial[a]
        shape = [1] * nd
        shape[a] = n
        pos = dense[a] + torch.arange(n, dtype=dense.dtype, device=dense.device).view(shape)
        if padding_mode == "zeros":
            ok = (pos >= -1e-4) & (pos <= n - 1 + 1e-4)
            inside = ok if inside is None else inside & ok
        if padding_mode != "reflection":
            pos = pos.clamp(0, n - 1)
        i = pos.floor()
        t = pos.sub_(i)
        t2 = t * t
        t3 = t2 * t
        # B-spline weights w0..w3 of the taps i-1..i+2; g0 = w0 + w1, g1 = w2 + w3 = 1 - g0
        w1 = (t3 * 0.5).sub_(t2).add_(2.0 / 3.0)
        g0 = (t3 * (1.0 / 3.0)).sub_(t2, alpha=0.5).sub_(t, alpha=0.5).add_(5.0 / 6.0)
        g1 = 1.0 - g0
        scale = 2.0 / (n - 1) if n > 1 else 0.0
        # normalised positions of the two linear taps: (i - 1 + w1 / g0) and (i + 1 + w3 / g1)
        base = i.mul_(scale).sub_(1.0)
        h0 = torch.addcmul(base, w1.div_(g0), torch.tensor(scale, dtype=t.dtype, device=t.device)).sub_(scale)
        h1 = torch.addcmul(base, t3.div_(g1), torch.tensor(scale / 6.0, dtype=t.dtype, device=t.device)).add_(scale)
        per_axis.append(((h0, g0), (h1, g1)))
    out: torch.Tensor | None = None
    grid = torch.empty((1, *spatial, nd), dtype=dense.dtype, device=dense.device)
    previous: tuple[int, ...] | None = None
    for step in range(2**nd):  # Gray-code order: one grid component changes from one corner to the next
        gray = step ^ (step >> 1)
        corner = tuple((gray >> a) & 1 for a in range(nd))
        for a in range(nd):
            if previous is None or previous[a] != corner[a]:
                grid[0, ..., nd - 1 - a].copy_(per_axis[a][corner[a]][0])
        previous = corner
        weight = per_axis[0][corner[0]][1]
        for a in range(1, nd):
            weight = weight * per_axis[a][corner[a]][1]
        s = _grid_sample(coeff, grid, "bilinear", "reflection")
        out = s.mul_(weight) if out is None else out.addcmul_(s, weight)
    assert out is not None
    if inside is not None:
        out = out.mul_(inside)
    return out


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


def _warp(
    images: Sequence[torch.Tensor],
    modes: Sequence[ModeType],
    padding_modes: Sequence[str],
    spatial: tuple,
    device: torch.device,
    get_dense: Callable[[torch.dtype], torch.Tensor],
    get_grid: Callable[[torch.dtype], torch.Tensor],
) -> list[torch.Tensor]:
    nd = len(spatial)
    if not (len(images) == len(modes) == len(padding_modes)):
        raise ValueError(
            f"images, modes and padding_modes must have the same length, got {len(images)}, {len(modes)}, "
            f"{len(padding_modes)}."
        )
    canon = [(look_up_elastic_mode(m, nd), look_up_elastic_padding_mode(p)) for m, p in zip(modes, padding_modes)]
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
    outputs: list[torch.Tensor | None] = [None] * len(images)
    for (m, p, cdt), members in groups.items():
        parts = [images[k].reshape(-1, *spatial).to(cdt) for k in members]
        x = (parts[0] if len(parts) == 1 else torch.cat(parts, 0)).unsqueeze(0)
        if m == _SPLINE3:
            y = _spline3_resample(x, get_dense(cdt), p)[0]
        else:
            y = _grid_sample(x, get_grid(cdt), str(m), p)[0]
        start = 0
        for k in members:
            img = images[k]
            c = img.reshape(-1, *spatial).shape[0]
            out_dtype = img.dtype if (m == "nearest" or img.dtype.is_floating_point) else torch.float32
            outputs[k] = y[start : start + c].reshape(img.shape).to(out_dtype)
            start += c
    return outputs  # type: ignore[return-value]


def _per_dtype(fn: Callable[[torch.dtype], torch.Tensor]) -> Callable[[torch.dtype], torch.Tensor]:
    cache: dict[torch.dtype, torch.Tensor] = {}

    def get(dtype: torch.dtype) -> torch.Tensor:
        if dtype not in cache:
            cache[dtype] = fn(dtype)
        return cache[dtype]

    return get


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
        modes: one interpolation mode per image (see :py:data:`ELASTIC_MODES`).
        padding_modes: one padding mode per image (see :py:data:`ELASTIC_PADDING_MODES`).
    """
    return _warp(
        images,
        modes,
        padding_modes,
        tuple(dense.shape[1:]),
        dense.device,
        _per_dtype(lambda dt: dense.to(dt)),
        _per_dtype(lambda dt: sampling_grid(dense.to(dt))),
    )


def _as_list(x, n: int) -> list:
    if isinstance(x, (str, int, np.integer)) or not isinstance(x, Sequence):
        return [x] * n
    if len(x) != n:
        raise ValueError(f"expected one value or {n} values, got {len(x)}: {x!r}.")
    return list(x)


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
    # plain tensors inside (MetaTensor's per-op bookkeeping is not needed here); the transforms restore the meta
    imgs = [x.as_tensor() if isinstance(x, MetaTensor) else x for x in imgs]
    if not imgs:
        return []
    for k, img in enumerate(imgs):
        if not isinstance(img, torch.Tensor):
            raise TypeError(f"images must be torch tensors, got {type(img).__name__} for image {k}.")
        if img.ndim not in (3, 4):
            raise ValueError(
                f"images must be channel-first 2D (C, H, W) or 3D (C, D, H, W), got shape {tuple(img.shape)}."
            )
    spatial = tuple(imgs[0].shape[1:])
    device = imgs[0].device
    modes = _as_list(mode, len(imgs))
    pads = _as_list(padding_mode, len(imgs))
    for m, p in zip(modes, pads):  # validate even when nothing is resampled
        look_up_elastic_mode(m, len(spatial))
        look_up_elastic_padding_mode(p)
    disp = torch.as_tensor(displacement)
    if not disp.dtype.is_floating_point:
        disp = disp.float()
    if not bool(torch.isfinite(disp).all()):
        raise ValueError("displacement must be finite.")
    if not bool(disp.any()):
        out = [img for img in imgs]
    else:
        disp = disp.to(device=device)
        out = _warp(
            imgs,
            modes,
            pads,
            spatial,
            device,
            _per_dtype(lambda dt: dense_displacement(disp.to(dt), spatial)),
            _per_dtype(lambda dt: coarse_sampling_grid(disp.to(dt), spatial)),
        )
    return out[0] if single else out


def invert_displacement(dense: torch.Tensor, iterations: int = 30, tolerance: float = 1e-3) -> torch.Tensor:
    """Dense field ``v`` with ``v(y) = -u(y + v(y))``: resampling a deformed image with ``v`` undoes ``u``.

    Fixed-point iteration, which converges when the field is smooth (``|grad u| < 1``), as the paper's fields
    are. ``u`` is evaluated between pixels by linear interpolation with mirror extension.

    Args:
        dense: per-pixel displacement ``(spatial_dims, *spatial)`` in pixels.
        iterations: maximum number of iterations.
        tolerance: stop when the largest update is below this many pixels.
    """
    field = dense.unsqueeze(0)
    v = -dense
    step = 0.0
    for _ in range(iterations):
        u_at = _grid_sample(field, sampling_grid(v), "bilinear", "reflection")
        v_new = -u_at[0]
        step = float((v_new - v).abs().max()) if v.numel() else 0.0
        v = v_new
        if step < tolerance:
            break
    if step >= tolerance:
        warnings.warn(
            f"the displacement field could not be inverted to {tolerance} px in {iterations} iterations (last update "
            f"{step:.3g} px): it probably folds (|grad u| >= 1, sigma too large for the grid spacing); the inverse "
            "is approximate."
        )
    return v


def grid_elastic_inverse(
    image: torch.Tensor, displacement: torch.Tensor, mode: ModeType = "bilinear", padding_mode: str = "reflection"
) -> torch.Tensor:
    """Approximately undo :py:func:`grid_elastic` with the same coarse ``displacement``.

    Exact up to interpolation where the forward deformation did not pull content from outside the image
    (content that left the field of view cannot be restored; the padding mode fills it).
    """
    disp = torch.as_tensor(displacement)
    if not disp.dtype.is_floating_point:
        disp = disp.float()
    if isinstance(image, MetaTensor):
        image = image.as_tensor()
    nd = image.ndim - 1
    look_up_elastic_mode(mode, nd)
    look_up_elastic_padding_mode(padding_mode)
    if not bool(disp.any()):
        return image
    cdt = torch.float64 if image.dtype == torch.float64 else torch.float32
    dense = dense_displacement(disp.to(device=image.device, dtype=cdt), image.shape[1:])
    return warp([image], invert_displacement(dense), [mode], [padding_mode])[0]

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

"""Cubic B-spline interpolation in pure torch: coarse-grid upsampling, the prefilter and resampling.

- :py:func:`bspline_upsampling_matrix`: the ``(n, G)`` matrix of 1-D interpolation from ``G`` nodes spanning an
  axis corner to corner to its ``n`` pixels (``scipy.ndimage.zoom(order=3)``, ``grid_mode=False``).
- :py:func:`spline_prefilter`: B-spline coefficients of an image (``scipy.ndimage.spline_filter(order=3,
  mode="mirror")``), as a banded matrix product per axis.
- :py:func:`bspline_resample`: the cubic B-spline interpolant evaluated at ``x + u(x)``
  (``scipy.ndimage.map_coordinates(order=3)``), as ``2**d`` linear look-ups of the coefficients.

Everything runs on the device of the input.
"""

from __future__ import annotations

import functools
import math

import torch

from .grid_sample import look_up_resample_padding_mode, threaded_grid_sample

__all__ = ["bspline_upsampling_matrix", "spline_prefilter", "bspline_resample"]

# cubic B-spline prefilter: pole z = sqrt(3) - 2, impulse response sqrt(3) z^|k| truncated at |k| <= 14
# (relative truncation error ~1e-8), applied blockwise as a banded matrix product.
_POLE = math.sqrt(3.0) - 2.0
_TAPS = 14
_BLOCK = 64


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

    Args:
        x: floating tensor ``(..., *spatial)``; the leading axes (batch, channels) are filtered independently.
        spatial_dims: number of trailing spatial axes to filter.

    Returns:
        contiguous tensor of ``x``'s shape and dtype.

    Examples::

        >>> import torch
        >>> x = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
        >>> c = spline_prefilter(x, 1)
        >>> [round(v, 4) for v in c[0].tolist()]  # scipy.ndimage.spline_filter1d(order=3, mode="mirror")
        [-0.9286, 1.8571, -0.5, 0.1429, -0.0714]
        >>> b = torch.tensor([1.0, 4.0, 1.0], dtype=torch.float64) / 6  # the B-spline at the pixels
        >>> round(float((c[0, :3] * b).sum()), 6)  # evaluating the spline at pixel 1 gives the sample back
        1.0
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


def bspline_resample(x: torch.Tensor, dense: torch.Tensor, padding_mode: str = "reflection") -> torch.Tensor:
    """Cubic B-spline interpolation of channel-first ``x`` at the pixel positions ``p + dense(p)``.

    The spline of ``x`` (prefilter, mirror boundary) is evaluated at every output pixel as ``2**d``
    (bi/tri)linear ``grid_sample`` look-ups of its coefficients: all cubic B-spline weights are positive, so each
    pair of taps along an axis folds into one linear tap (Sigg & Hadwiger, GPU Gems 2, ch. 20). The coefficients
    always extend by mirroring (consistent with the prefilter, so the spline interpolates the pixels up to the
    border); ``padding_mode`` only decides the value at positions outside the image: ``"reflection"`` mirrors
    them (SciPy ``mode="mirror"``), ``"border"`` clamps them to the border, ``"zeros"`` gives 0 (SciPy
    ``mode="constant"``). Equal to ``scipy.ndimage.map_coordinates(order=3)`` per channel to ~1e-7.

    Args:
        x: floating image ``(C, *spatial)``, 2D or 3D.
        dense: per-pixel displacement ``(spatial_dims, *spatial)`` in pixels, array-axis order (component ``a``
            moves along spatial axis ``a``), same dtype and device as ``x``.
        padding_mode: one of :py:data:`~.grid_sample.RESAMPLE_PADDING_MODES` (case-insensitive).

    Returns:
        ``(C, *spatial)``, dtype of ``x``.

    Examples::

        >>> import torch
        >>> x = torch.rand(1, 12, 10, dtype=torch.float64)
        >>> shift = torch.zeros(2, 12, 10, dtype=torch.float64)
        >>> shift[1] = 1.0  # sample one pixel further along the last axis
        >>> out = bspline_resample(x, shift)
        >>> torch.allclose(out[..., :-1], x[..., 1:], atol=1e-6)  # the spline interpolates the pixels
        True
    """
    return _bspline_resample(x, dense, look_up_resample_padding_mode(padding_mode))


def _bspline_resample(x: torch.Tensor, dense: torch.Tensor, padding_mode: str) -> torch.Tensor:
    # bspline_resample without the argument check, for warp_lazy (which checks its padding modes once)
    nd = dense.shape[0]
    spatial = dense.shape[1:]
    coeff = spline_prefilter(x, nd).unsqueeze(0)
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
        s = threaded_grid_sample(coeff, grid, "bilinear", "reflection")
        out = s.mul_(weight) if out is None else out.addcmul_(s, weight)
    assert out is not None
    if inside is not None:
        out = out.mul_(inside)
    return out[0]

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

"""``grid_sample`` sampling grids for the positions ``x + u(x)`` of a displacement field.

Coordinate conventions: displacements are in pixels, in array-axis order (component ``a`` moves along spatial
axis ``a``); grids use ``align_corners=True``, so pixel ``i`` of an axis of length ``n`` sits at the normalised
coordinate ``2 i / (n - 1) - 1``, and their last dimension is ``grid_sample``'s ``(x, y[, z])``, the reversed
array axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .bspline import bspline_upsampling_matrix

__all__ = ["sampling_grid", "coarse_sampling_grid"]


def sampling_grid(dense: torch.Tensor) -> torch.Tensor:
    """``grid_sample`` grid ``(1, *spatial, spatial_dims)`` (``align_corners=True``) for pixel positions ``x + u(x)``.

    Args:
        dense: per-pixel displacement ``(spatial_dims, *spatial)`` in pixels, array-axis order.

    Examples::

        >>> import torch
        >>> grid = sampling_grid(torch.zeros(2, 3, 5))  # no displacement: the identity grid
        >>> grid.shape
        torch.Size([1, 3, 5, 2])
        >>> grid[0, 0, :, 0].tolist(), grid[0, :, 0, 1].tolist()  # x runs along the last axis, y along the first
        ([-1.0, -0.5, 0.0, 0.5, 1.0], [-1.0, 0.0, 1.0])
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


def _upsampling_matrices(
    displacement: torch.Tensor, spatial_shape: Sequence[int]
) -> tuple[tuple[int, ...], list[torch.Tensor]]:
    # the image size as ints and one bspline_upsampling_matrix per axis (dtype and device of ``displacement``)
    # for a coarse grid (spatial_dims, G_0, ..., G_{d-1}); shared with elastic.functional.dense_displacement
    spatial = tuple(int(s) for s in spatial_shape)
    nd = len(spatial)
    if displacement.ndim != nd + 1 or displacement.shape[0] != nd:
        raise ValueError(
            f"displacement must have shape (spatial_dims, *grid_shape) = ({nd}, ...) for spatial_shape "
            f"{spatial}, got {tuple(displacement.shape)}."
        )
    dt, dev = displacement.dtype, displacement.device
    return spatial, [bspline_upsampling_matrix(n, g, dt, dev) for n, g in zip(spatial, displacement.shape[1:])]


def coarse_sampling_grid(displacement: torch.Tensor, spatial_shape: Sequence[int]) -> torch.Tensor:
    """The sampling grid of a coarse displacement grid's cubic B-spline interpolant, as one matrix product.

    Equal to ``sampling_grid(dense)`` where ``dense`` is ``displacement`` interpolated to every pixel with one
    :py:func:`~monai_unet2015.transforms.resample.bspline.bspline_upsampling_matrix` per axis (nodes spanning
    the image corner to corner), without materialising ``dense``: the identity part of the grid is linear along
    one axis, so it folds into the separable interpolation as one extra node per axis (an "augmented" coarse
    grid); the last axis and the ``(x, y[, z])`` interleaving of ``grid_sample``'s layout are produced by a single
    ``matmul`` that writes the contiguous grid directly.

    Args:
        displacement: coarse grid ``(spatial_dims, G_0, ..., G_{d-1})`` in pixels, array-axis order.
        spatial_shape: ``(n_0, ..., n_{d-1})``, the image size.

    Returns:
        ``(1, *spatial_shape, spatial_dims)``, dtype and device of ``displacement``.

    Examples::

        >>> import torch
        >>> disp = torch.zeros(2, 3, 3)
        >>> disp[1] = 2.0  # every node 2 px along the last axis
        >>> grid = coarse_sampling_grid(disp, (4, 5))
        >>> grid.shape
        torch.Size([1, 4, 5, 2])
        >>> [round(v, 4) for v in grid[0, 0, :, 0].tolist()]  # x = 2 (i + 2) / 4 - 1
        [0.0, 0.5, 1.0, 1.5, 2.0]
    """
    spatial, mats = _upsampling_matrices(displacement, spatial_shape)
    nd = len(spatial)
    dt, dev = displacement.dtype, displacement.device
    grid_shape = tuple(displacement.shape[1:])
    scales = [2.0 / (n - 1) if n > 1 else 0.0 for n in spatial]
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

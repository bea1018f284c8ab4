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

"""Inverse of a smooth dense displacement field by fixed-point iteration."""

from __future__ import annotations

import warnings

import torch

from .grid import sampling_grid
from .grid_sample import threaded_grid_sample

__all__ = ["invert_displacement"]


def invert_displacement(dense: torch.Tensor, iterations: int = 30, tolerance: float = 1e-3) -> torch.Tensor:
    """Dense field ``v`` with ``v(y) = -u(y + v(y))``: resampling a deformed image with ``v`` undoes ``u``.

    Fixed-point iteration ``v <- -u(y + v(y))`` from ``v = -u``, which converges when the field is smooth
    (``|grad u| < 1``). ``u`` is evaluated between pixels by linear interpolation with mirror extension. Warns
    when the largest update is still above ``tolerance`` after ``iterations`` steps (the field folds).

    Args:
        dense: per-pixel displacement ``u``, ``(spatial_dims, *spatial)`` in pixels, array-axis order.
        iterations: maximum number of iterations.
        tolerance: stop when the largest update is below this many pixels.

    Returns:
        ``v``, same shape, dtype and device as ``dense``.

    Examples::

        >>> import torch
        >>> u = torch.full((2, 8, 8), 1.5)  # a constant shift
        >>> v = invert_displacement(u)
        >>> torch.allclose(v, -u)  # is undone by the opposite shift
        True
    """
    field = dense.unsqueeze(0)
    v = -dense
    step = 0.0
    for _ in range(iterations):
        u_at = threaded_grid_sample(field, sampling_grid(v), "bilinear", "reflection")
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

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

"""Functional core of the U-Net weight map (Ronneberger, Fischer & Brox, MICCAI 2015, Eq. 2 and Fig. 3).

Everything here works on plain NumPy arrays holding the *spatial* axes only (no channel axis);
:py:class:`~monai_unet2015.transforms.weight_map.array.UNetWeightMap` adds the channel axis and MetaTensor
handling on top. Every public function checks its arguments once, with the checks of this module
(``_check_term``, ``_check_class_weights``, ``_spacing_tuple``) and of
:py:mod:`monai_unet2015.transforms.instances`, and then calls private cores that trust them, so that
:py:func:`unet_weight_map` and the transform check nothing twice. The pieces, in the order
:py:func:`unet_weight_map` applies them:

1. :py:func:`~monai_unet2015.transforms.instances.label_instances`: instance ids from an instance label map, or
   connected components of a binary mask (in :py:mod:`monai_unet2015.transforms.instances`).
2. :py:func:`carve_borders`: every instance pixel that touches a *different* instance becomes background
   (the separation border of Fig. 3c).
3. :py:func:`separation_border_term`: ``w0 * exp(-(d1 + d2)**2 / (2 sigma**2))`` on background pixels, where
   ``d1`` and ``d2`` are the Euclidean distances to the nearest and the second-nearest instance.
4. :py:func:`class_balance_weights`: ``wc``, the class-frequency balancing term.

:py:func:`separation_border_term` is exact up to an absolute tolerance ``tol`` that the caller chooses
(default ``1e-4``; the work grows only like ``log(w0 / tol)``, so ``1e-9``, exact to float32 precision, costs
about 1.5-2x). Its cost grows with the number of pixels, not with pixels x instances: the term can exceed ``tol``
only where ``d1 + d2 <= sigma * sqrt(2 ln(w0 / tol))``, so each instance's distance transform is needed only in
a window around it that reaches towards its neighbours; all windows are laid side by side and transformed by
one SciPy feature transform per window width, and the two smallest distances per pixel are found with
vectorised scatter-minimum operations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from monai.utils import ensure_tuple_rep
from monai.utils.misc import issequenceiterable

from ..instances.connectivity import check_connectivity

# label_instances and its helpers live in transforms.instances (label_instances is also importable from here)
from ..instances.functional import (  # noqa: F401
    _as_label_array,
    _label_instances,
    _look_up_label_type,
    _resolve_label_type,
    label_instances,
)
from ..instances.relabel import _relabel_consecutive

__all__ = [
    "carve_borders",
    "separation_border_term",
    "separation_border_radius",
    "class_balance_weights",
    "unet_weight_map",
]

# Upper bound on the voxels of one canvas (memory: about 40 bytes per voxel for the gathered ids, SciPy's
# feature transform and the float64 squared distances, i.e. ~85 MB at this size).
_CHUNK_VOXELS = 1 << 21
# Upper bound on (pixel, distance) candidate pairs collected before they are merged into the result.
_FLUSH_ENTRIES = 1 << 23
# Upper bound on candidate pairs of neighbouring instances examined to shrink the windows.
_MAX_PAIRS = 1 << 24
# Window lengths are rounded up to this geometric grid so that instances of similar size share one call.
_WINDOW_GROWTH = 1.1


def _check_number(name: str, value: float, low: float, inclusive: bool, hint: str = "") -> float:
    """``value`` as a finite float ``>= low`` (``> low`` unless ``inclusive``); bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r}).")
    value = float(value)
    if not (math.isfinite(value) and (value >= low if inclusive else value > low)):
        raise ValueError(f"{name} must be a finite number {'>=' if inclusive else '>'} {low:g}{hint}, got {value}.")
    return value


def _check_term(w0: float, sigma: float, tol: float) -> tuple[float, float, float]:
    """The separation term's ``w0 >= 0``, ``sigma > 0`` and ``tol > 0`` as floats."""
    return (
        _check_number("w0", w0, 0.0, inclusive=True),
        _check_number("sigma", sigma, 0.0, inclusive=False),
        _check_number("tol", tol, 0.0, inclusive=False, hint=" (e.g. 1e-9 for float32-exact results)"),
    )


def _check_class_weights(
    class_weights: str | Sequence[float] | None, num_classes: int = 2
) -> str | tuple[float, ...] | None:
    """``"balanced"``, ``None`` or ``num_classes`` finite non-negative floats (background, foreground, ...)."""
    if class_weights is None or (isinstance(class_weights, str) and class_weights == "balanced"):
        return class_weights
    message = (
        f"class_weights must be 'balanced', None or {num_classes} finite non-negative numbers "
        f"(w_background, w_foreground), got {class_weights!r}."
    )
    if isinstance(class_weights, str):
        raise ValueError(message)
    try:
        values = np.asarray(class_weights, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if values.size != num_classes or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(message)
    return tuple(float(v) for v in values)


def _spacing_tuple(spacing: Sequence[float] | float | None, ndim: int | None) -> tuple[float, ...]:
    """``spacing`` as one finite positive float per spatial axis (``None``: 1), with ``monai.utils.ensure_tuple_rep``.

    ``ndim=None`` (a transform's constructor, before the image is seen): as many values as given, a number
    counting as one.
    """
    if spacing is None:
        return (1.0,) * (ndim or 1)
    what = "a sequence of numbers" if ndim is None else f"a sequence of {ndim}"
    type_message = f"spacing must be None, a positive number or {what}, got {spacing!r}."
    if isinstance(spacing, (bool, np.bool_, str)):
        raise TypeError(type_message)
    try:
        count = (len(spacing) if issequenceiterable(spacing) else 1) if ndim is None else ndim  # type: ignore[arg-type]
        per_axis = ensure_tuple_rep(spacing, count)
    except TypeError:
        raise TypeError(type_message) from None
    except ValueError:
        raise ValueError(f"spacing must have one value per spatial axis ({ndim}), got {spacing!r}.") from None
    try:
        values = tuple(float(s) for s in per_axis)
    except (TypeError, ValueError):
        raise TypeError(type_message) from None
    if not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing values must be finite and positive, got {spacing!r}.")
    return values


def carve_borders(instances: np.ndarray, connectivity: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Insert separation borders between touching instances (paper Fig. 3c).

    A pixel of instance ``i`` becomes background when any of its neighbours (``connectivity`` as in
    ``scipy.ndimage.generate_binary_structure``; default full, i.e. 8-neighbourhood in 2D and 26 in 3D) belongs
    to a *different* instance ``j > 0``. Both sides are carved, so two instances that share an edge end up
    separated by a two-pixel-wide background border; instances that only touch the background are unchanged.

    Args:
        instances: spatial array of non-negative integer instance ids (0 = background).
        connectivity: neighbourhood that defines "touching"; 1 = faces only, ``ndim`` or ``None`` = full.

    Returns:
        ``(carved, border)``: the instance ids with border pixels set to 0 (the input's integer dtype; bool and
        integral float inputs become integers) and the boolean mask of the carved pixels.

    Examples::

        >>> import numpy as np
        >>> lab = np.array([[1, 1, 2, 2]])
        >>> carve_borders(lab)[0].tolist()
        [[1, 0, 0, 2]]
    """
    instances = _as_label_array(instances)
    return _carve_borders(instances, check_connectivity(connectivity, instances.ndim))  # type: ignore[arg-type]


def _carve_borders(instances: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """:py:func:`carve_borders` of a checked label array and an int ``connectivity`` in ``[1, ndim]``."""
    footprint = ndi.generate_binary_structure(instances.ndim, connectivity)
    fg = instances != 0
    # largest and smallest foreground id in each neighbourhood (background excluded from the minimum)
    hi = ndi.maximum_filter(instances, footprint=footprint, mode="constant", cval=0)
    big = np.iinfo(instances.dtype).max if np.issubdtype(instances.dtype, np.integer) else np.inf
    lo = ndi.minimum_filter(np.where(fg, instances, big), footprint=footprint, mode="constant", cval=big)
    border = fg & ((hi != instances) | (lo != instances))
    carved = np.where(border, 0, instances).astype(instances.dtype, copy=False)
    return carved, border


def separation_border_radius(
    w0: float, sigma: float, tol: float, spacing: Sequence[float] | float | None = None, ndim: int = 2
) -> float:
    """Largest second-nearest distance ``d2`` (physical units) at which the border term can still exceed ``tol``.

    On a background pixel ``d1 >= min(spacing)``, so ``w0 * exp(-(d1 + d2)**2 / (2 sigma**2)) < tol`` as soon
    as ``d2 > sigma * sqrt(2 ln(w0 / tol)) - min(spacing)``. Returns ``-inf`` when the term can never reach
    ``tol`` (``tol >= w0``); ``tol`` must be ``> 0``.
    """
    return _border_radius(w0, sigma, tol, min(_spacing_tuple(spacing, ndim)))


def _border_radius(w0: float, sigma: float, tol: float, s_min: float) -> float:
    if w0 <= tol:
        return -math.inf
    return sigma * math.sqrt(2.0 * math.log(w0 / tol)) - s_min


def _window_grid(limit: int) -> np.ndarray:
    """Ascending window lengths 1, 2, ..., growing geometrically by ``_WINDOW_GROWTH``, capped at ``limit``."""
    values = [1]
    while values[-1] < limit:
        values.append(max(values[-1] + 1, int(math.ceil(values[-1] * _WINDOW_GROWTH))))
    grid = np.asarray(values, np.int64)
    grid[-1] = min(grid[-1], limit)
    return grid


def _merge_two_smallest(
    pix: np.ndarray, dist: np.ndarray, d1: np.ndarray | None, d2: np.ndarray | None, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Merge candidate distances into the running smallest (``d1``) and second smallest (``d2``) per pixel.

    ``pix``/``dist`` hold at most one entry per (pixel, instance) pair and no instance that an earlier merge
    has seen (``d1``/``d2`` are ``None`` before the first merge). Within the candidates, one entry attaining
    the minimum of its pixel is the "winner" and every other entry competes for the second place, so two
    instances at the same distance give ``d2 == d1``. The two smallest of the union of two disjoint sets are
    ``min(a1, b1)`` and ``min(max(a1, b1), a2, b2)``.
    """
    c1 = np.full(size, np.inf, dist.dtype)
    np.minimum.at(c1, pix, dist)
    others = dist != c1[pix]
    at_min = np.flatnonzero(~others)
    winner = np.empty(size, at_min.dtype)
    winner[pix[at_min]] = at_min  # with repeated pixels exactly one of the tied entries is stored
    others[at_min] = winner[pix[at_min]] != at_min
    c2 = np.full(size, np.inf, dist.dtype)
    np.minimum.at(c2, pix[others], dist[others])
    if d1 is None or d2 is None:
        return c1, c2
    return np.minimum(d1, c1), np.minimum(np.maximum(d1, c1), np.minimum(d2, c2))


def _window_bounds(
    starts: np.ndarray,
    lasts: np.ndarray,
    spacing: tuple[float, ...],
    cutoff: float,
    grow: np.ndarray,
    size: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per instance, the box of pixels where it can be the nearest or second-nearest instance with ``d1 + d2 <=
    cutoff``: returns ``(lo, hi, active)`` (inclusive pixel bounds per axis, and whether the instance has any
    neighbour at all).

    Instance pixels are only known here through their bounding boxes ``[starts, lasts]`` (inclusive). Two
    instances can share such a pixel only if their boxes are at most ``cutoff`` apart ("neighbours"; found by
    a sort-and-sweep along axis 0). For a pixel ``x`` relevant to the pair ``(i, j)``, along each axis ``a``
    ``(s_i - x_a) + (s_j - x_a) <= D_i + D_j <= cutoff`` (in pixels of that axis), so
    ``x_a >= (s_i + s_j - cutoff_a) / 2`` and likewise ``x_a <= (l_i + l_j + cutoff_a) / 2``. The window of
    ``i`` is the hull of its own box and these pair boxes, capped at ``grow`` pixels around its box.
    Instances without neighbours never contribute (``active`` is False). When the sweep would produce too many
    candidate pairs, every instance keeps its full ``grow`` window (still exact, just slower).
    """
    n, ndim = starts.shape
    cutoff_px = np.asarray([cutoff / spacing[a] for a in range(ndim)])
    full_lo = np.maximum(starts - grow, 0)
    full_hi = np.minimum(lasts + grow, size - 1)
    order = np.argsort(starts[:, 0], kind="stable")
    first = starts[order, 0]
    # candidates of the i-th box (in this order): later boxes starting at most cutoff_px[0] after its last row
    limit = np.searchsorted(first, lasts[order, 0] + cutoff_px[0], side="right")
    counts = np.maximum(limit - np.arange(1, n + 1), 0)
    total = int(counts.sum())
    if total > _MAX_PAIRS:
        return full_lo, full_hi, np.ones(n, bool)
    left = np.repeat(np.arange(n), counts)
    right = left + 1 + (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))
    i, j = order[left], order[right]
    gap = np.maximum(0, np.maximum(starts[j] - lasts[i], starts[i] - lasts[j])) * np.asarray(spacing)
    close = np.sqrt(np.sum(gap * gap, axis=1)) <= cutoff
    i, j = np.concatenate([i[close], j[close]]), np.concatenate([j[close], i[close]])
    lo = starts.copy()
    np.minimum.at(lo, i, np.ceil((starts[i] + starts[j] - cutoff_px) / 2).astype(np.int64))
    hi = lasts.copy()
    np.maximum.at(hi, i, np.floor((lasts[i] + lasts[j] + cutoff_px) / 2).astype(np.int64))
    active = np.bincount(i, minlength=n) > 0
    return np.maximum(lo, full_lo), np.minimum(hi, full_hi), active


def _two_nearest_distances(
    ids: np.ndarray, n: int, spacing: tuple[float, ...], radius: float, cutoff: float
) -> tuple[np.ndarray, np.ndarray]:
    """Distances ``d1 <= d2`` (flat, float32) from each background pixel to its two nearest instances.

    Exact (up to float32 rounding) wherever ``d1 + d2 <= cutoff`` (then ``d2 <= radius = cutoff - min
    spacing``); elsewhere each value is ``inf`` or at least the exact one. Instance pixels get ``inf``.

    Each instance ``i`` needs its distance map ``D_i`` only in a window around it (:py:func:`_window_bounds`:
    at most its bounding box grown by ``grow = floor(radius / spacing)`` pixels per axis). Those windows are
    cut out and laid side by side along one axis (the "stacking" axis: the longest image axis) into one canvas
    per window cross-section, and one SciPy feature transform of "pixel is not the instance of its window"
    gives every ``D_i`` at once. Between the instances of consecutive windows the canvas keeps at least
    ``grow + 1`` rows along the stacking axis (window margins plus filler rows that are neither background nor
    instance), so a pixel within ``radius`` of its own instance cannot find a nearer instance pixel in another
    window. Candidate distances ``<= radius`` are reduced to the two smallest per pixel
    (:py:func:`_merge_two_smallest`).
    """
    shape = ids.shape
    ndim = ids.ndim
    diagonal = math.sqrt(sum((shape[a] * spacing[a]) ** 2 for a in range(ndim)))
    reach = min(radius, diagonal)  # no distance inside the image exceeds the diagonal
    grow_all = [math.floor(reach / spacing[a]) for a in range(ndim)]
    axis = int(np.argmax([shape[a] / (1.0 + grow_all[a]) for a in range(ndim)]))
    order = [axis] + [a for a in range(ndim) if a != axis]
    spacing_t = tuple(spacing[a] for a in order)
    grow = np.asarray([grow_all[a] for a in order], np.int64)
    ids_t = np.moveaxis(ids, axis, 0)  # stacking axis first
    size = np.asarray(ids_t.shape, np.int64)

    objects = ndi.find_objects(ids_t, max_label=n)
    starts = np.array([[sl.start for sl in obj] for obj in objects], np.int64)
    lasts = np.array([[sl.stop - 1 for sl in obj] for obj in objects], np.int64)
    lo, hi, active = _window_bounds(starts, lasts, spacing_t, cutoff, grow, size)
    members_all = np.flatnonzero(active)
    if members_all.size == 0:
        return np.full(ids.size, np.inf, np.float32), np.full(ids.size, np.inf, np.float32)

    # the image plus one filler row of -1 (neither background nor an instance) at index size[0]
    ids_p = np.concatenate([ids_t.reshape(-1), np.full(int(np.prod(size[1:])), -1, ids_t.dtype)])
    strides = [int(np.prod(size[a + 1 :])) for a in range(ndim)]  # element strides of the image
    # stacking axis: exact window extent, margins before/after the instance box
    row_start = lo[:, 0]
    heights = hi[:, 0] - lo[:, 0] + 1
    margin_before = starts[:, 0] - lo[:, 0]
    margin_after = hi[:, 0] - lasts[:, 0]
    # other axes: lengths rounded up to a coarse grid so that windows share canvases
    widths = hi - lo + 1
    for a in range(1, ndim):
        grid = _window_grid(int(size[a]))
        widths[:, a] = grid[np.searchsorted(grid, widths[:, a])]
    col_start = np.minimum(lo, size - widths)  # still covers [lo, hi] and stays inside the image

    # squared distances in integer pixel units when the grid is isotropic (exact), float32 otherwise
    isotropic = len(set(spacing_t)) == 1
    if isotropic:
        longest = math.sqrt(float(np.sum((size + 2 * grow[0]) ** 2)))
        dist_dtype = np.int32 if longest < 40000 else np.int64
        limit_sq = math.floor((radius / spacing_t[0]) ** 2 * (1.0 + 1e-9)) if math.isfinite(radius) else None
    else:
        dist_dtype = np.float32
        limit_sq = radius * radius * (1.0 + 1e-6) if math.isfinite(radius) else None
    # canvas axes: the cross-section axes (reordered axes 1..ndim-1), then the stacking axis
    canvas_spacing = spacing_t[1:] + spacing_t[:1]
    step_sq = [np.float32(v * v) for v in canvas_spacing]

    n_pix = ids.size
    d1: np.ndarray | None = None
    d2: np.ndarray | None = None
    pending_pix: list[np.ndarray] = []
    pending_dist: list[np.ndarray] = []
    pending = 0

    groups, group_of = np.unique(widths[members_all, 1:], axis=0, return_inverse=True)
    group_of = group_of.reshape(-1)
    for g, wshape in enumerate(groups):
        wshape_t = tuple(int(v) for v in wshape)
        # flat offsets of a window cross-section (image order), after a leading axis for the canvas rows
        cross = np.zeros((1,) + wshape_t, np.intp)
        for a in range(1, ndim):
            along = [1] * ndim
            along[a] = wshape_t[a - 1]
            cross = cross + (np.arange(wshape_t[a - 1], dtype=np.intp) * strides[a]).reshape(along)
        members = members_all[group_of == g]
        cap_rows = max(1, _CHUNK_VOXELS // max(1, int(np.prod(wshape_t))))
        chunk_of = (np.cumsum(heights[members] + grow[0]) - 1) // cap_rows
        for c in np.unique(chunk_of):
            chunk = members[chunk_of == c]
            # filler rows after each window so that consecutive instances stay > radius apart
            filler = np.zeros(chunk.size, np.int64)
            filler[:-1] = np.maximum(0, grow[0] - np.minimum(margin_after[chunk[:-1]], margin_before[chunk[1:]]))
            hgt = heights[chunk]
            seg = hgt + filler
            total = int(seg.sum())
            row_win = np.repeat(np.arange(chunk.size), seg)
            offset = np.arange(total) - np.repeat(np.cumsum(seg) - seg, seg)
            src_row = np.where(offset < hgt[row_win], row_start[chunk][row_win] + offset, size[0])
            base = src_row * strides[0]
            for a in range(1, ndim):
                base += col_start[chunk, a][row_win] * strides[a]
            flat = base.reshape((total,) + (1,) * (ndim - 1)) + cross  # (total, *wshape): index into the image
            canvas = ids_p[flat]  # the windows stacked along axis 0, in image order
            own = (chunk + 1)[row_win].astype(canvas.dtype).reshape((total,) + (1,) * (ndim - 1))
            # SciPy's feature transform is fastest with the long (stacking) axis last
            outside = np.ascontiguousarray(np.moveaxis(canvas != own, 0, -1))
            feature = ndi.distance_transform_edt(
                outside, sampling=canvas_spacing, return_distances=False, return_indices=True
            )
            dist_sq = None
            for a in range(ndim):
                along = [1] * ndim
                along[a] = outside.shape[a]
                step = feature[a].astype(dist_dtype, copy=False)
                step -= np.arange(outside.shape[a], dtype=dist_dtype).reshape(along)
                step *= step
                if not isotropic:
                    step *= step_sq[a]
                dist_sq = step if dist_sq is None else dist_sq + step
            dist_sq = np.moveaxis(dist_sq, -1, 0)  # back to (total, *wshape)
            keep = canvas == 0
            if limit_sq is not None:
                keep &= dist_sq <= limit_sq
            # entries in image order: the two-smallest reduction then walks memory nearly sequentially
            pending_pix.append(flat[keep])
            kept = dist_sq[keep].astype(np.float32)
            np.sqrt(kept, out=kept)
            if isotropic and spacing_t[0] != 1:
                kept *= np.float32(spacing_t[0])
            pending_dist.append(kept)
            pending += kept.size
            if pending >= _FLUSH_ENTRIES:  # bound the memory of the candidate lists
                d1, d2 = _merge_two_smallest(np.concatenate(pending_pix), np.concatenate(pending_dist), d1, d2, n_pix)
                pending_pix, pending_dist, pending = [], [], 0
    if pending:
        d1, d2 = _merge_two_smallest(np.concatenate(pending_pix), np.concatenate(pending_dist), d1, d2, n_pix)
    if d1 is None or d2 is None:
        return np.full(ids.size, np.inf, np.float32), np.full(ids.size, np.inf, np.float32)
    if axis != 0:  # back to the original axis order
        d1 = np.moveaxis(d1.reshape(ids_t.shape), 0, axis).reshape(-1)
        d2 = np.moveaxis(d2.reshape(ids_t.shape), 0, axis).reshape(-1)
    return d1, d2


def separation_border_term(
    instances: np.ndarray,
    w0: float = 10.0,
    sigma: float = 5.0,
    spacing: Sequence[float] | float | None = None,
    tol: float = 1e-4,
) -> np.ndarray:
    """The separation term ``w0 * exp(-(d1 + d2)**2 / (2 sigma**2))`` of the U-Net weight map (paper Eq. 2).

    ``d1(x)`` and ``d2(x)`` are the Euclidean distances (in the units of ``spacing``) from pixel ``x`` to the
    nearest pixel of the nearest instance and of the second-nearest instance. The term is evaluated on
    background pixels (``instances == 0``) and is 0 on instance pixels; with fewer than two instances it is 0
    everywhere.

    The result is within ``tol`` (absolute) of the exact value everywhere. Let ``R = sigma * sqrt(2 ln(w0 /
    tol))``: wherever ``d1 + d2 <= R`` both distances are computed exactly (float32), and elsewhere the exact
    term is below ``tol`` and the result lies in ``[0, tol)``. Each instance is handled in a window around it
    that reaches at most ``R - min(spacing)`` beyond its bounding box, and only towards instances whose boxes
    are within ``R`` of its own (an isolated instance costs nothing); the windows are laid side by side,
    separated so that they cannot see each other's instances, and one SciPy feature transform per window width
    gives all distances. The cost therefore grows with the number of pixels, not with pixels x instances, and
    only like ``log(w0 / tol)`` with the tolerance.

    Args:
        instances: spatial array (2D or 3D) of instance ids, 0 = background.
        w0: amplitude of the term (paper: 10).
        sigma: width of the term in the units of ``spacing`` (paper: 5 pixels).
        spacing: size of a pixel along each spatial axis; ``None`` means 1 (``sigma`` in pixels).
        tol: absolute tolerance, ``> 0``.

    Returns:
        float32 array with the shape of ``instances``.

    Examples::

        >>> import numpy as np
        >>> lab = np.array([[1, 0, 0, 2]])
        >>> term = separation_border_term(lab, w0=10.0, sigma=5.0)
        >>> # pixel 1: d1 = 1, d2 = 2 -> 10 * exp(-9 / 50)
        >>> bool(abs(term[0, 1] - 10 * np.exp(-9 / 50)) < 1e-5)
        True
    """
    instances = _as_label_array(instances)
    spacing_t = _spacing_tuple(spacing, instances.ndim)
    w0, sigma, tol = _check_term(w0, sigma, tol)
    return _separation_border_term(instances, w0, sigma, spacing_t, tol)


def _separation_border_term(
    instances: np.ndarray, w0: float, sigma: float, spacing_t: tuple[float, ...], tol: float
) -> np.ndarray:
    """:py:func:`separation_border_term` of checked arguments (``spacing_t``: one float per axis)."""
    out = np.zeros(instances.shape, np.float32)
    radius = _border_radius(w0, sigma, tol, min(spacing_t))
    if w0 == 0 or radius < min(spacing_t):
        return out
    ids, n = _relabel_consecutive(instances)
    if n < 2:
        return out
    cutoff = radius + min(spacing_t)  # the term is below tol where d1 + d2 > cutoff
    d1, d2 = _two_nearest_distances(ids, n, spacing_t, radius, cutoff)
    found = np.isfinite(d2)
    s = d1[found].astype(np.float64) + d2[found]
    out.reshape(-1)[found] = w0 * np.exp(-(s * s) / (2.0 * sigma * sigma))
    return out


def class_balance_weights(
    target: np.ndarray, class_weights: str | Sequence[float] | None = "balanced", num_classes: int = 2
) -> np.ndarray:
    """``wc``: the per-pixel class weight of the U-Net weight map.

    Args:
        target: spatial array of class indices in ``[0, num_classes)``.
        class_weights: ``"balanced"`` (default): ``wc_k = n / (K * n_k)`` with ``n`` the number of pixels,
            ``n_k`` the pixels of class ``k`` and ``K`` the number of classes present in this image, so that the
            mean of ``wc`` over the image is 1 and every present class carries the same total weight; a single
            class present gives 1 everywhere. ``None``: 1 everywhere. A sequence of ``num_classes`` non-negative
            numbers: fixed weights.
        num_classes: number of classes (2: background, foreground).

    Returns:
        float32 array with the shape of ``target``.
    """
    return _class_balance_weights(np.asarray(target), _check_class_weights(class_weights, num_classes), num_classes)


def _class_balance_weights(
    target: np.ndarray, class_weights: str | tuple[float, ...] | None, num_classes: int = 2
) -> np.ndarray:
    """:py:func:`class_balance_weights` of checked ``class_weights`` (:py:func:`_check_class_weights`)."""
    if class_weights is None:
        return np.ones(target.shape, np.float32)
    if isinstance(class_weights, str):  # "balanced"
        counts = np.bincount(target.ravel().astype(np.int64), minlength=num_classes).astype(np.float64)
        present = counts > 0
        table = np.zeros(counts.size)
        table[present] = target.size / (present.sum() * counts[present])
    else:
        table = np.asarray(class_weights, np.float64)
    return table.astype(np.float32)[target]


def unet_weight_map(
    labels: np.ndarray,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_weights: str | Sequence[float] | None = "balanced",
    spacing: Sequence[float] | float | None = None,
    carve: bool = True,
    connectivity: int | None = None,
    label_type: str = "auto",
    tol: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray]:
    """The U-Net weight map ``w = wc + w0 * exp(-(d1 + d2)**2 / (2 sigma**2))`` and the carved binary target.

    Steps: instances from ``labels`` (:py:func:`label_instances`), separation borders carved between touching
    instances (:py:func:`carve_borders`, if ``carve``), the binary target ``instances > 0``, ``wc`` from the
    target (:py:func:`class_balance_weights`), and the separation term on background pixels
    (:py:func:`separation_border_term`), measured to the *carved* instances.

    Args:
        labels: spatial array (2D or 3D): instance ids (0 = background) or a binary mask.
        w0: amplitude of the separation term (paper: 10).
        sigma: its width, in pixels or in the units of ``spacing`` (paper: 5 pixels).
        class_weights: ``"balanced"``, ``None`` or ``(w_background, w_foreground)``; see
            :py:func:`class_balance_weights`.
        spacing: pixel size per spatial axis (``None``: 1).
        carve: insert separation borders between touching instances.
        connectivity: neighbourhood for "touching" and for connected components (1 = faces, ``None`` = full).
        label_type: ``"auto"``, ``"instance"`` or ``"binary"``; see :py:func:`label_instances`.
        tol: absolute tolerance of the separation term, ``> 0``.

    Returns:
        ``(weight, target)``: float32 weight map and uint8 binary target (1 = instance interior), both with the
        shape of ``labels``.

    Examples::

        >>> import numpy as np
        >>> lab = np.zeros((8, 8), np.int32)
        >>> lab[2:6, 1:4], lab[2:6, 4:7] = 1, 2  # two touching squares
        >>> weight, target = unet_weight_map(lab, class_weights=None)
        >>> target[3].tolist()  # columns 3 and 4 were carved
        [0, 1, 1, 0, 0, 1, 1, 0]
        >>> round(float(weight[3, 3]), 4)  # 1 + 10 * exp(-(1 + 2)**2 / 50)
        9.3527
    """
    labels = _as_label_array(labels)
    if labels.ndim not in (2, 3):
        raise ValueError(f"labels must have 2 or 3 spatial dimensions, got shape {labels.shape}.")
    label_type = _resolve_label_type(labels, _look_up_label_type(label_type))
    if label_type == "binary" or carve:  # connectivity only matters for components and carving
        connectivity = check_connectivity(connectivity, labels.ndim)
    class_weights = _check_class_weights(class_weights)
    spacing_t = _spacing_tuple(spacing, labels.ndim)
    w0, sigma, tol = _check_term(w0, sigma, tol)
    return _unet_weight_map(labels, w0, sigma, class_weights, spacing_t, carve, connectivity, label_type, tol)


def _unet_weight_map(
    labels: np.ndarray,
    w0: float,
    sigma: float,
    class_weights: str | tuple[float, ...] | None,
    spacing_t: tuple[float, ...],
    carve: bool,
    connectivity: int | None,
    label_type: str,
    tol: float,
) -> tuple[np.ndarray, np.ndarray]:
    """:py:func:`unet_weight_map` of checked arguments; the core that ``UNetWeightMap`` calls too."""
    instances, _ = _label_instances(labels, label_type, connectivity)
    if carve:
        instances, _ = _carve_borders(instances, connectivity)  # type: ignore[arg-type]
    target = (instances > 0).astype(np.uint8)
    weight = _class_balance_weights(target, class_weights)
    weight += _separation_border_term(instances, w0, sigma, spacing_t, tol)
    return weight, target

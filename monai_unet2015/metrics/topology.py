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

"""Topological errors of a prediction against a (warped) ground truth: splits, mergers, added/deleted objects, holes.

The ISBI 2012 warping error (Jain et al. 2010, CVPR) warps the ground truth into the prediction by
topology-preserving simple-point flips (:py:func:`~monai_unet2015.metrics.simple_point.warp_binary`);
the pixels that still disagree are topological errors. :py:func:`topological_errors` classifies them by
their effect on the connected components of the cells and of the background, with ``scipy.ndimage.label``
and ``np.bincount``; it works on 2D and 3D images.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage as ndi

from monai_unet2015.transforms.instances.connectivity import check_connectivity

from ._validation import check_label_map, to_numpy

__all__ = ["TopologicalErrors", "topological_errors"]


class TopologicalErrors(NamedTuple):
    """Topological disagreements of a prediction with a (warped) ground truth, counted as object events."""

    splits: int
    """Extra pieces that ground-truth cells break into (a cell cut in two counts 1)."""
    mergers: int
    """Ground-truth cells lost by fusion (two cells joined count 1)."""
    object_additions: int
    """Predicted cells with no ground-truth cell."""
    object_deletions: int
    """Ground-truth cells with no predicted pixel."""
    hole_additions: int
    """New membrane (background) components: holes inside cells, or membrane cut off by a closed loop."""
    hole_deletions: int
    """Membrane (background) components filled or joined to another."""


def _structures(ndim: int, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and (complementary) background structuring elements."""
    fg = ndi.generate_binary_structure(ndim, connectivity)
    bg = ndi.generate_binary_structure(ndim, ndim if connectivity == 1 else 1)
    return fg, bg


def _count_events(fine: np.ndarray, n_fine: int, coarse: np.ndarray, n_coarse: int) -> tuple[int, int]:
    """Components of ``fine`` lie inside components of ``coarse``: count coarse ones holding none / the extras."""
    parent = np.zeros(n_fine + 1, dtype=np.int64)
    inside = fine > 0
    parent[fine[inside]] = coarse[inside]
    members = np.bincount(parent[1:], minlength=n_coarse + 1)[1:]
    return int(np.count_nonzero(members == 0)), int(np.maximum(members - 1, 0).sum())


def topological_errors(warped, target, connectivity: int = 1) -> TopologicalErrors:
    """Classify the disagreements between a warped ground truth and a prediction by topological events.

    ``warped`` is the ground truth after topology-preserving warping
    (:py:func:`~monai_unet2015.metrics.simple_point.warp_binary`), so the
    pixels where it still disagrees with ``target`` are topological errors. Their effect is measured
    on object counts, for the two kinds of disagreement separately: removing the pixels the
    prediction marks as membrane (``warped & target``) breaks ground-truth cells into pieces
    (splits, object deletions); adding the pixels it marks as cell (``warped | target``) joins cells
    (mergers, object additions). Holes are counted the same way on the background components
    (pixels outside the image count as background). All counts come from connected-component labels
    and ``np.bincount``, without a loop over pixels or objects; they apply to 2D and 3D images alike.

    Args:
        warped: binary image, ``True`` = cell (the warped ground truth).
        target: binary image of the same shape, ``True`` = cell (the thresholded prediction).
        connectivity: 1 (cells 4-connected, membranes 8-connected in 2D) up to ``ndim``.

    Examples::

        >>> import numpy as np
        >>> gt = np.zeros((5, 9), bool); gt[1:4, 1:4] = True; gt[1:4, 5:8] = True
        >>> bridged = gt | (np.arange(9) == 4)[None] & gt.any(1)[:, None]  # join the two cells
        >>> topological_errors(gt, bridged)  # doctest: +NORMALIZE_WHITESPACE
        TopologicalErrors(splits=0, mergers=1, object_additions=0, object_deletions=0,
                          hole_additions=0, hole_deletions=0)
    """
    func = "topological_errors"
    w = check_label_map(to_numpy(warped, "warped", func), "warped", func, binary=True)
    t = check_label_map(to_numpy(target, "target", func), "target", func, binary=True)
    if w.shape != t.shape:
        raise ValueError(f"{func}: warped and target must have the same shape, got {w.shape} and {t.shape}.")
    connectivity = check_connectivity(connectivity, w.ndim, func, allow_none=False)
    return _topological_errors(w, t, connectivity)


def _topological_errors(w: np.ndarray, t: np.ndarray, connectivity: int) -> TopologicalErrors:
    if not np.any(w != t):
        return TopologicalErrors(0, 0, 0, 0, 0, 0)
    w, t = np.pad(w, 1), np.pad(t, 1)  # outside the image: background, one component around it
    fg_s, bg_s = _structures(w.ndim, connectivity)
    lw, nw = ndi.label(w, fg_s)
    land, nand = ndi.label(w & t, fg_s)
    lor, nor = ndi.label(w | t, fg_s)
    deletions, splits = _count_events(land, nand, lw, nw)  # pieces of each true cell
    additions, mergers = _count_events(lw, nw, lor, nor)  # true cells inside each predicted blob
    bw, nbw = ndi.label(~w, bg_s)
    b_grow, n_grow = ndi.label(~(w & t), bg_s)  # membrane added inside cells
    b_shrink, n_shrink = ndi.label(~(w | t), bg_s)  # membrane covered by predicted cells
    new_bg, joined_bg = _count_events(bw, nbw, b_grow, n_grow)
    filled_bg, cut_bg = _count_events(b_shrink, n_shrink, bw, nbw)
    return TopologicalErrors(splits, mergers, additions, deletions, new_bg + cut_bg, joined_bg + filled_bg)

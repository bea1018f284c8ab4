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

"""The ISBI 2012 EM segmentation challenge's pixel, Rand and warping errors (U-Net paper, Table 1).

The challenge (Arganda-Carreras et al. 2015, Front. Neuroanat. 9:142) scores a membrane probability
map against a binary membrane/cell label: the map is thresholded at several levels and the best value
over the levels is reported. Cells are the connected components of the non-membrane pixels.

- pixel error: fraction of pixels where the thresholded map and the label disagree (or, with
  ``mode="fscore"``, one minus the F-score of the cell pixels).
- Rand error: one minus the F-score of the foreground-restricted (adapted) Rand index: pixel pairs
  inside ground-truth cells only, ground-truth membrane pixels ignored, each predicted membrane
  pixel inside a ground-truth cell a singleton (SNEMI3D / Fiji ``RandError``).
- warping error (Jain et al. 2010, CVPR): the ground truth is warped into the thresholded prediction by
  topology-preserving simple-point flips; the pixels that still disagree are topological errors
  (splits, mergers, added/deleted objects or holes). Reported as their fraction of all pixels.

Each comes as a plain function (numpy or torch in, a named tuple out) and as a MONAI
:py:class:`~monai.metrics.CumulativeIterationMetric` that accumulates per-image statistics over an
evaluation and picks one best threshold for the whole set, as the challenge did for its test stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy import ndimage as ndi

from monai.metrics import CumulativeIterationMetric

from ._validation import (
    batch_layout,
    check_choice,
    check_connectivity,
    check_label_map,
    check_probability,
    check_thresholds,
    to_numpy,
)
from .contingency import contingency_table
from .simple_point import warp_binary

__all__ = [
    "DEFAULT_THRESHOLDS",
    "ThresholdSweep",
    "RandScore",
    "TopologicalErrors",
    "WarpingErrorResult",
    "adapted_rand_error",
    "topological_errors",
    "pixel_error",
    "rand_error",
    "warping_error",
    "PixelErrorMetric",
    "RandErrorMetric",
    "WarpingErrorMetric",
]

#: Binarisation levels tried by default: 0.1, 0.2, ..., 0.9 (the challenge's script swept 0.0 to 1.0
#: in steps of 0.1; the two end levels give an all-one or all-zero map for most probability maps).
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(1, 10))

_POLARITIES = ("membrane", "cell")


class ThresholdSweep(NamedTuple):
    """Best error over binarisation thresholds, and the error at every threshold."""

    error: float
    """The lowest error over ``thresholds`` (``nan`` if undefined at every threshold)."""
    threshold: float
    """The threshold giving ``error`` (the first one on ties)."""
    errors: np.ndarray
    """The error at each threshold, shape ``(T,)``."""
    thresholds: np.ndarray
    """The thresholds, shape ``(T,)``."""


class RandScore(NamedTuple):
    """Adapted Rand error with its precision and recall (``error = 1 - F-score``)."""

    error: float
    precision: float
    recall: float


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


class WarpingErrorResult(NamedTuple):
    """Warping error at the best threshold, its topological errors, and the error at every threshold."""

    error: float
    threshold: float
    errors: np.ndarray
    thresholds: np.ndarray
    splits: int
    mergers: int
    object_additions: int
    object_deletions: int
    hole_additions: int
    hole_deletions: int


# --------------------------------------------------------------------------------------------------
# Building blocks on label maps / binary images
# --------------------------------------------------------------------------------------------------


def _rand_sums(labels_true: np.ndarray, labels_pred: np.ndarray, normalization: str) -> np.ndarray:
    """``[sum_AB, sum_A, sum_B]`` over the pixels with ``labels_true > 0`` (counts, float64)."""
    fg = labels_true > 0
    a, b, n = contingency_table(labels_true[fg], labels_pred[fg])
    if n.size == 0:
        return np.zeros(3)
    n = n.astype(np.float64)
    _, a_dense = np.unique(a, return_inverse=True)
    size_a = np.bincount(a_dense, weights=n)
    inside = b > 0
    _, b_dense = np.unique(b[inside], return_inverse=True)
    size_b = np.bincount(b_dense, weights=n[inside]) if inside.any() else np.zeros(0)
    singletons = float(n[~inside].sum())  # predicted background inside true objects: one segment per pixel
    n_in = n[inside]
    if normalization == "n2":  # ordered pixel pairs, a pixel paired with itself included
        return np.array(
            [np.dot(n_in, n_in) + singletons, np.dot(size_a, size_a), np.dot(size_b, size_b) + singletons]
        )
    # "pairs": ordered pairs of distinct pixels (singletons contribute none)
    return np.array(
        [np.dot(n_in, n_in - 1), np.dot(size_a, size_a - 1), np.dot(size_b, size_b - 1)],
    )


def _rand_from_sums(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ab, a, b = (np.asarray(sums, dtype=np.float64)[..., k] for k in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        fscore = np.where(a + b > 0, 2.0 * ab / np.where(a + b > 0, a + b, 1.0), np.nan)
        precision = np.where(b > 0, ab / np.where(b > 0, b, 1.0), np.nan)
        recall = np.where(a > 0, ab / np.where(a > 0, a, 1.0), np.nan)
    return 1.0 - fscore, precision, recall


def adapted_rand_error(labels_true, labels_pred, normalization: str = "n2") -> RandScore:
    """Foreground-restricted (adapted) Rand error of two label maps, as in SNEMI3D and ISBI 2012.

    Only the pixels with ``labels_true > 0`` count (ground-truth background is ignored). Each pixel
    with ``labels_pred == 0`` among them is a segment of its own (a singleton). With the contingency
    counts ``p_ij`` (true label ``i > 0``, predicted label ``j > 0``), the true object sizes ``a_i``
    (all their pixels), the predicted segment sizes ``b_j`` restricted to true foreground and ``s``
    singletons::

        normalization="n2":    AB = sum p_ij^2 + s,        A = sum a_i^2,        B = sum b_j^2 + s
        normalization="pairs": AB = sum p_ij (p_ij - 1),   A = sum a_i (a_i - 1), B = sum b_j (b_j - 1)
        precision = AB / B,  recall = AB / A,  error = 1 - 2 AB / (A + B)

    ``"n2"`` counts ordered pixel pairs including a pixel with itself (the N^2 normalisation of
    Arganda-Carreras et al. 2015 and of Fiji's ``RandError.foregroundRestrictedStatsN2``); ``"pairs"``
    counts pairs of distinct pixels (Fiji's ``foregroundRestrictedRandIndex``). ``"pairs"`` equals
    ``skimage.metrics.adapted_rand_error`` whenever no pixel of ``labels_pred`` is 0 inside the true
    foreground (scikit-image makes predicted label 0 one segment instead of singletons).

    Args:
        labels_true: ground-truth label map (non-negative integers, 0 = ignored), any dimension.
        labels_pred: predicted label map of the same shape (0 = unassigned / membrane).
        normalization: ``"n2"`` (default) or ``"pairs"``, see above.

    Returns:
        ``RandScore(error, precision, recall)``; ``nan`` where undefined (no true foreground).

    Examples::

        >>> import numpy as np
        >>> gt = np.array([[1, 1, 0, 2, 2]])
        >>> round(adapted_rand_error(gt, gt).error, 6)
        0.0
        >>> merged = np.array([[1, 1, 1, 1, 1]])
        >>> round(adapted_rand_error(gt, merged).error, 4)  # AB = 8, A = 8, B = 16
        0.3333
    """
    func = "adapted_rand_error"
    normalization = check_choice(normalization, "normalization", ("n2", "pairs"), func)
    t = check_label_map(to_numpy(labels_true, "labels_true", func), "labels_true", func)
    p = check_label_map(to_numpy(labels_pred, "labels_pred", func), "labels_pred", func)
    if t.shape != p.shape:
        raise ValueError(f"{func}: labels_true and labels_pred must have the same shape, got {t.shape} and {p.shape}.")
    err, prec, rec = _rand_from_sums(_rand_sums(t, p, normalization))
    return RandScore(float(err), float(prec), float(rec))


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

    ``warped`` is the ground truth after topology-preserving warping (:py:func:`warp_binary`), so the
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
    connectivity = check_connectivity(connectivity, w.ndim, func)
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


# --------------------------------------------------------------------------------------------------
# Per-image statistics at every threshold (shared by the functions and the metric classes)
# --------------------------------------------------------------------------------------------------


def _cells(prob: np.ndarray, threshold: float, polarity: str) -> np.ndarray:
    above = prob > threshold
    return above if polarity == "cell" else ~above


def _pixel_stats(prob: np.ndarray, gt_cell: np.ndarray, thresholds: np.ndarray, polarity: str) -> np.ndarray:
    """``(T, 4)``: true positives, false positives, false negatives, true negatives (cells positive)."""
    n, n_gt = float(gt_cell.size), float(np.count_nonzero(gt_cell))
    out = np.zeros((thresholds.size, 4))
    for k, th in enumerate(thresholds):
        pred = _cells(prob, th, polarity)
        tp = float(np.count_nonzero(pred & gt_cell))
        n_pred = float(np.count_nonzero(pred))
        out[k] = (tp, n_pred - tp, n_gt - tp, n - n_pred - n_gt + tp)
    return out


def _rand_stats(
    prob: np.ndarray, gt_cell: np.ndarray, thresholds: np.ndarray, polarity: str, connectivity: int, normalization: str
) -> np.ndarray:
    """``(T, 3)``: the adapted Rand sums ``[AB, A, B]`` of the cell components at every threshold."""
    fg_s, _ = _structures(prob.ndim, connectivity)
    gt_lab, _ = ndi.label(gt_cell, fg_s)
    out = np.zeros((thresholds.size, 3))
    for k, th in enumerate(thresholds):
        pred_lab, _ = ndi.label(_cells(prob, th, polarity), fg_s)
        out[k] = _rand_sums(gt_lab, pred_lab, normalization)
    return out


_WARP_FIELDS = 8  # mismatches, pixels, then the six TopologicalErrors counts


def _warping_stats(
    prob: np.ndarray, gt_cell: np.ndarray, thresholds: np.ndarray, polarity: str, connectivity: int
) -> np.ndarray:
    """``(T, 8)``: remaining disagreements, pixel count and the topological error counts."""
    out = np.zeros((thresholds.size, _WARP_FIELDS))
    for k, th in enumerate(thresholds):
        pred = _cells(prob, th, polarity)
        warped = warp_binary(gt_cell, pred, priority=np.abs(prob - th), connectivity=connectivity)
        out[k, 0] = np.count_nonzero(warped != pred)
        out[k, 1] = pred.size
        out[k, 2:] = _topological_errors(warped, pred, connectivity)
    return out


def _pixel_errors(stats: np.ndarray, mode: str) -> np.ndarray:
    tp, fp, fn, tn = (stats[..., k].sum(axis=0) for k in range(4))
    with np.errstate(divide="ignore", invalid="ignore"):
        if mode == "disagreement":
            total = tp + fp + fn + tn
            return np.where(total > 0, (fp + fn) / np.where(total > 0, total, 1.0), np.nan)
        denom = 2 * tp + fp + fn
        return np.where(denom > 0, 1.0 - 2 * tp / np.where(denom > 0, denom, 1.0), np.nan)


def _rand_errors(stats: np.ndarray) -> np.ndarray:
    return _rand_from_sums(stats.sum(axis=0))[0]


def _warping_errors(stats: np.ndarray) -> np.ndarray:
    mism, n = stats[..., 0].sum(axis=0), stats[..., 1].sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, mism / np.where(n > 0, n, 1.0), np.nan)


def _best(errors: np.ndarray, thresholds: np.ndarray) -> ThresholdSweep:
    errors = np.asarray(errors, dtype=np.float64)
    if errors.size == 0 or np.all(np.isnan(errors)):
        return ThresholdSweep(float("nan"), float("nan"), errors, thresholds)
    k = int(np.nanargmin(errors))
    return ThresholdSweep(float(errors[k]), float(thresholds[k]), errors, thresholds)


def _warping_result(stats: np.ndarray, thresholds: np.ndarray) -> WarpingErrorResult:
    sweep = _best(_warping_errors(stats), thresholds)
    if np.isnan(sweep.threshold):
        counts = [0] * 6
    else:
        k = int(np.flatnonzero(thresholds == sweep.threshold)[0])
        counts = [int(v) for v in stats[:, k, 2:].sum(axis=0)]
    return WarpingErrorResult(sweep.error, sweep.threshold, sweep.errors, sweep.thresholds, *counts)


# --------------------------------------------------------------------------------------------------
# Plain functions
# --------------------------------------------------------------------------------------------------


def _prepare(y_pred, y, polarity: str, func: str, spatial: Sequence[int] = (2, 3)):
    polarity = check_choice(polarity, "polarity", _POLARITIES, func)
    p = to_numpy(y_pred, "y_pred", func)
    g = to_numpy(y, "y", func)
    p, g = batch_layout(p, g, func, spatial)
    p = check_probability(p, "y_pred", func)
    g = check_label_map(g, "y", func, binary=True)
    return p, (g if polarity == "cell" else ~g), polarity


def pixel_error(
    y_pred,
    y,
    thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
    polarity: str = "membrane",
    mode: str = "disagreement",
) -> ThresholdSweep:
    """ISBI 2012 pixel error: the best over thresholds of the disagreement of the binarised map with ``y``.

    At each threshold ``t`` a pixel is predicted as the class named by ``polarity`` when
    ``y_pred > t``. ``mode="disagreement"`` (default) gives the fraction of pixels where the binary
    maps differ (the squared Euclidean distance per pixel of Fiji's ``PixelError``);
    ``mode="fscore"`` gives ``1 - F1`` of the cell (non-membrane) pixels, the challenge's "1 - maximal
    F-score of pixel similarity". Over a batch the counts are pooled before the best threshold is
    chosen, as for the challenge's test stack.

    Args:
        y_pred: probability map in [0, 1], ``(H, W)`` or batch-first channel-first ``(B, 1, H, W)`` /
            ``(B, 1, D, H, W)``; numpy or torch.
        y: binary ground truth (0/1 or bool) of the same shape.
        thresholds: binarisation level(s) in [0, 1]; default 0.1, 0.2, ..., 0.9.
        polarity: what the value 1 means in ``y_pred`` and ``y``: ``"membrane"`` (default: 1 =
            membrane/boundary, 0 = cell) or ``"cell"`` (1 = cell interior, as the challenge's label
            images, whose 255 is cell, and a U-Net trained on them to predict cells).
        mode: ``"disagreement"`` or ``"fscore"``.

    Returns:
        ``ThresholdSweep(error, threshold, errors, thresholds)``.

    Examples::

        >>> import numpy as np
        >>> y = np.zeros((4, 4)); y[:, 0] = 1  # membrane on the left column
        >>> prob = 0.8 * y; prob[0, 1] = 0.6  # one uncertain pixel
        >>> r = pixel_error(prob, y, thresholds=(0.5, 0.7))
        >>> r.error, r.threshold  # at 0.5 the uncertain pixel is wrong, at 0.7 it is right
        (0.0, 0.7)
    """
    func = "pixel_error"
    mode = check_choice(mode, "mode", ("disagreement", "fscore"), func)
    thr = check_thresholds(thresholds, func)
    p, gt_cell, polarity = _prepare(y_pred, y, polarity, func)
    stats = np.stack([_pixel_stats(p[b], gt_cell[b], thr, polarity) for b in range(p.shape[0])])
    return _best(_pixel_errors(stats, mode), thr)


def rand_error(
    y_pred,
    y,
    thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
    polarity: str = "membrane",
    connectivity: int = 1,
    normalization: str = "n2",
) -> ThresholdSweep:
    """ISBI 2012 Rand error: 1 - the maximal F-score of the foreground-restricted Rand index.

    At each threshold, cells are the connected components (``connectivity``) of the non-membrane
    pixels, in the ground truth and in the binarised prediction; :py:func:`adapted_rand_error`
    compares them over the ground-truth cell pixels only (ground-truth membrane ignored, predicted
    membrane inside a true cell counts as singletons). Over a batch the pair counts are pooled (each
    image's pairs stay within the image) before the best threshold is chosen.

    Args:
        y_pred: probability map in [0, 1], ``(H, W)``, ``(B, 1, H, W)`` or ``(B, 1, D, H, W)``.
        y: binary ground truth of the same shape.
        thresholds: binarisation level(s) in [0, 1]; default 0.1, ..., 0.9.
        polarity: ``"membrane"`` (1 = membrane, default) or ``"cell"`` (1 = cell), for both inputs.
        connectivity: neighbourhood of the cell components, 1 (4-connected in 2D, 6 in 3D, as the
            challenge) up to the number of spatial dimensions.
        normalization: ``"n2"`` (default, pixel pairs with self-pairs, SNEMI3D/Arganda-Carreras 2015)
            or ``"pairs"`` (pairs of distinct pixels).

    Returns:
        ``ThresholdSweep(error, threshold, errors, thresholds)``.

    Examples::

        >>> import numpy as np
        >>> y = np.zeros((5, 7)); y[:, 3] = 1  # two cells separated by a membrane column
        >>> rand_error(y, y).error
        0.0
        >>> round(rand_error(np.zeros((5, 7)), y).error, 4)  # the membrane is missed: the cells merge
        0.3333
    """
    func = "rand_error"
    normalization = check_choice(normalization, "normalization", ("n2", "pairs"), func)
    thr = check_thresholds(thresholds, func)
    p, gt_cell, polarity = _prepare(y_pred, y, polarity, func)
    connectivity = check_connectivity(connectivity, p.ndim - 1, func)
    stats = np.stack(
        [_rand_stats(p[b], gt_cell[b], thr, polarity, connectivity, normalization) for b in range(p.shape[0])]
    )
    return _best(_rand_errors(stats), thr)


def warping_error(
    y_pred,
    y,
    thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
    polarity: str = "membrane",
    connectivity: int = 1,
) -> WarpingErrorResult:
    """ISBI 2012 warping error (Jain et al. 2010) with its splits and mergers, best over thresholds.

    At each threshold ``t`` the ground-truth cells are warped into the predicted cells by flipping
    simple points only, most confident disagreements (largest ``|y_pred - t|``) first, as in the
    challenge's Fiji implementation (:py:func:`warp_binary`). The pixels that still disagree cannot be
    fixed without changing the topology; the warping error is their fraction of all pixels, and
    :py:func:`topological_errors` counts the splits, mergers and other topological errors they make.
    2D only: simple points are defined on the 3x3 neighbourhood here.

    Args:
        y_pred: probability map in [0, 1], ``(H, W)`` or ``(B, 1, H, W)``.
        y: binary ground truth of the same shape.
        thresholds: binarisation level(s) in [0, 1]; default 0.1, ..., 0.9.
        polarity: ``"membrane"`` (1 = membrane, default) or ``"cell"`` (1 = cell), for both inputs.
        connectivity: 1 (cells 4-connected, membranes 8-connected, as the challenge) or 2 (the reverse).

    Returns:
        ``WarpingErrorResult(error, threshold, errors, thresholds, splits, mergers, object_additions,
        object_deletions, hole_additions, hole_deletions)``; the counts are those at the best threshold,
        summed over the batch.

    Examples::

        >>> import numpy as np
        >>> y = np.ones((6, 6)); y[1:5, 1:5] = 0  # one cell inside a membrane frame
        >>> cut = y.copy(); cut[1:5, 3] = 1  # the prediction cuts the cell in two
        >>> r = warping_error(cut, y, thresholds=0.5)
        >>> r.error * 36, r.splits, r.mergers  # one pixel of the cut cannot be warped away
        (1.0, 1, 0)
    """
    func = "warping_error"
    thr = check_thresholds(thresholds, func)
    p, gt_cell, polarity = _prepare(y_pred, y, polarity, func, spatial=(2,))
    connectivity = check_connectivity(connectivity, 2, func)
    stats = np.stack([_warping_stats(p[b], gt_cell[b], thr, polarity, connectivity) for b in range(p.shape[0])])
    return _warping_result(stats, thr)


# --------------------------------------------------------------------------------------------------
# MONAI metrics
# --------------------------------------------------------------------------------------------------


class _ThresholdSweepMetric(CumulativeIterationMetric):
    """Buffers per-image statistics ``(B, T, K)``; ``aggregate`` pools them and picks the best threshold."""

    _spatial: tuple[int, ...] = (2, 3)

    def __init__(self, thresholds: float | Sequence[float], polarity: str) -> None:
        super().__init__()
        self.thresholds = check_thresholds(thresholds, type(self).__name__)
        self.polarity = check_choice(polarity, "polarity", _POLARITIES, type(self).__name__)

    def _image_stats(self, prob: np.ndarray, gt_cell: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """Per-image statistics ``(B, T, K)`` (float64, on the device of ``y_pred``).

        Args:
            y_pred: probability map, batch-first channel-first ``(B, 1, H, W)`` (or ``(B, 1, D, H, W)``
                where the metric supports 3D).
            y: binary ground truth of the same shape.
        """
        func = type(self).__name__
        if y is None:
            raise ValueError(f"{func}: the ground truth y is required.")
        if y_pred.ndim < 4:
            raise ValueError(
                f"{func}: y_pred and y must be batch-first channel-first (B, 1, H, W)"
                f"{' or (B, 1, D, H, W)' if 3 in self._spatial else ''}, got shape {tuple(y_pred.shape)}."
            )
        p, gt_cell, _ = _prepare(y_pred, y, self.polarity, func, self._spatial)
        stats = np.stack([self._image_stats(p[b], gt_cell[b]) for b in range(p.shape[0])])
        return torch.as_tensor(stats, dtype=torch.float64, device=y_pred.device)

    def _stats(self) -> np.ndarray:
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor) or data.numel() == 0:
            raise ValueError(f"{type(self).__name__}: nothing to aggregate, call the metric on some data first.")
        return data.detach().cpu().numpy()

    def aggregate_details(self) -> ThresholdSweep:
        """The pooled result: best error, its threshold, and the error at every threshold."""
        raise NotImplementedError

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """The best (lowest) error over the thresholds, pooled over all buffered images (a 0-d tensor).

        :py:meth:`aggregate_details` also gives the threshold and the error at every threshold.
        """
        return torch.tensor(self.aggregate_details().error, dtype=torch.float64)


class PixelErrorMetric(_ThresholdSweepMetric):
    """ISBI 2012 pixel error as a MONAI cumulative metric (see :py:func:`pixel_error`).

    Each call buffers per-image counts ``(B, T, 4)`` (true/false positives/negatives of the cell
    pixels at each threshold); :py:meth:`aggregate` pools them over everything seen and returns the
    lowest error over the thresholds; :py:meth:`aggregate_details` also gives the threshold.

    Args:
        thresholds: binarisation level(s) in [0, 1]; default 0.1, ..., 0.9.
        polarity: ``"membrane"`` (1 = membrane, default) or ``"cell"`` (1 = cell), for ``y_pred`` and ``y``.
        mode: ``"disagreement"`` (fraction of differing pixels) or ``"fscore"`` (1 - F1 of cell pixels).

    Examples::

        >>> import torch
        >>> y = torch.zeros(2, 1, 8, 8); y[:, :, :, 4] = 1
        >>> metric = PixelErrorMetric(polarity="membrane")
        >>> _ = metric(y_pred=0.9 * y, y=y)
        >>> float(metric.aggregate()), metric.aggregate_details().threshold
        (0.0, 0.1)
    """

    def __init__(
        self,
        thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
        polarity: str = "membrane",
        mode: str = "disagreement",
    ) -> None:
        super().__init__(thresholds, polarity)
        self.mode = check_choice(mode, "mode", ("disagreement", "fscore"), type(self).__name__)

    def _image_stats(self, prob: np.ndarray, gt_cell: np.ndarray) -> np.ndarray:
        return _pixel_stats(prob, gt_cell, self.thresholds, self.polarity)

    def aggregate_details(self) -> ThresholdSweep:
        return _best(_pixel_errors(self._stats(), self.mode), self.thresholds)


class RandErrorMetric(_ThresholdSweepMetric):
    """ISBI 2012 Rand error as a MONAI cumulative metric (see :py:func:`rand_error`).

    Each call buffers per-image adapted Rand sums ``(B, T, 3)``; :py:meth:`aggregate` pools them and
    returns ``1 -`` the maximal F-score over the thresholds.

    Args:
        thresholds: binarisation level(s) in [0, 1]; default 0.1, ..., 0.9.
        polarity: ``"membrane"`` (1 = membrane, default) or ``"cell"`` (1 = cell).
        connectivity: 1 (4-connected cells in 2D, 6 in 3D) up to the number of spatial dimensions.
        normalization: ``"n2"`` (default) or ``"pairs"``, see :py:func:`adapted_rand_error`.

    Examples::

        >>> import torch
        >>> y = torch.zeros(1, 1, 5, 7); y[..., 3] = 1
        >>> metric = RandErrorMetric()
        >>> _ = metric(y_pred=torch.zeros_like(y), y=y)  # the separating membrane is missed
        >>> round(float(metric.aggregate()), 4)
        0.3333
    """

    def __init__(
        self,
        thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
        polarity: str = "membrane",
        connectivity: int = 1,
        normalization: str = "n2",
    ) -> None:
        super().__init__(thresholds, polarity)
        if isinstance(connectivity, bool) or not isinstance(connectivity, (int, np.integer)) or connectivity < 1:
            raise ValueError(f"RandErrorMetric: connectivity must be a positive integer, got {connectivity!r}.")
        self.connectivity = int(connectivity)
        self.normalization = check_choice(normalization, "normalization", ("n2", "pairs"), "RandErrorMetric")

    def _image_stats(self, prob: np.ndarray, gt_cell: np.ndarray) -> np.ndarray:
        conn = check_connectivity(self.connectivity, prob.ndim, type(self).__name__)
        return _rand_stats(prob, gt_cell, self.thresholds, self.polarity, conn, self.normalization)

    def aggregate_details(self) -> ThresholdSweep:
        return _best(_rand_errors(self._stats()), self.thresholds)


class WarpingErrorMetric(_ThresholdSweepMetric):
    """ISBI 2012 warping error as a MONAI cumulative metric, 2D (see :py:func:`warping_error`).

    Each call buffers per-image statistics ``(B, T, 8)``: remaining disagreements after warping,
    pixel count, then splits, mergers, object additions, object deletions, hole additions and hole
    deletions at each threshold. :py:meth:`aggregate` returns the lowest pooled warping error;
    :py:meth:`aggregate_details` a :py:class:`WarpingErrorResult` with the threshold and the counts.

    Args:
        thresholds: binarisation level(s) in [0, 1]; default 0.1, ..., 0.9.
        polarity: ``"membrane"`` (1 = membrane, default) or ``"cell"`` (1 = cell).
        connectivity: 1 (cells 4-, membranes 8-connected, default) or 2 (the reverse).

    Examples::

        >>> import torch
        >>> y = torch.ones(1, 1, 6, 6); y[..., 1:5, 1:5] = 0
        >>> cut = y.clone(); cut[..., 1:5, 3] = 1
        >>> metric = WarpingErrorMetric(thresholds=0.5)
        >>> _ = metric(y_pred=cut, y=y)
        >>> details = metric.aggregate_details()
        >>> float(metric.aggregate()) * 36, details.splits, details.mergers
        (1.0, 1, 0)
    """

    _spatial = (2,)

    def __init__(
        self,
        thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
        polarity: str = "membrane",
        connectivity: int = 1,
    ) -> None:
        super().__init__(thresholds, polarity)
        self.connectivity = check_connectivity(connectivity, 2, type(self).__name__)

    def _image_stats(self, prob: np.ndarray, gt_cell: np.ndarray) -> np.ndarray:
        return _warping_stats(prob, gt_cell, self.thresholds, self.polarity, self.connectivity)

    def aggregate_details(self) -> WarpingErrorResult:  # type: ignore[override]
        return _warping_result(self._stats(), self.thresholds)

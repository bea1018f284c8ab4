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

"""The ISBI 2012 leaderboard's current metrics: V_rand and V_info after border thinning.

Arganda-Carreras et al. 2015 (Front. Neuroanat. 9:142, "Crowdsourcing the creation of image
segmentation algorithms for connectomics") replaced the 2012 pixel, Rand and warping
errors by two foreground-restricted scores (1 = perfect, higher is better), computed after the borders
of the proposed segmentation are thinned to one pixel. With ``S`` the proposed segmentation, ``T`` the
ground truth and ``p_ij`` the probability that a pixel drawn from the ground-truth foreground lies in
segment ``i`` of ``S`` and segment ``j`` of ``T`` (``s_i = sum_j p_ij``, ``t_j = sum_i p_ij``)::

    V_rand_split = sum_ij p_ij^2 / sum_j t_j^2      V_rand_merge = sum_ij p_ij^2 / sum_i s_i^2
    V_rand       = 2 sum_ij p_ij^2 / (sum_i s_i^2 + sum_j t_j^2)     (their harmonic mean)
    V_info_split = I(S;T) / H(S)                     V_info_merge = I(S;T) / H(T)
    V_info       = 2 I(S;T) / (H(S) + H(T))                          (their harmonic mean)

Splits of true objects lower the split scores, mergers the merge scores. The challenge's evaluation
script (the Fiji wiki's "Segmentation evaluation after border thinning" BeanShell script, 2016, which
calls ``RandError.getMaximalVRandAfterThinning`` and ``VariationOfInformation.getMaximalVInfoAfterThinning``
of Fiji's Trainable_Segmentation, thresholds 0.0 to 1.0 in steps of 0.1) computes them, at each
binarisation threshold of the submitted map, as follows; this module does the same:

1. Ground truth: the 4-connected components of its cell (non-membrane) pixels. Ground-truth membrane
   pixels are ignored ("foreground-restricted").
2. Proposal: binarised at the threshold; its cell pixels are the basins (markers) of a classic
   watershed (Soille & Vincent 1990; Fiji's ``WatershedTransform2D``, 4-connected) that floods the
   predicted membrane pixels. Every predicted membrane pixel is thus *assigned to a neighbouring
   segment* except the one-pixel-wide dams where two basins meet: this is the "border thinning".
   A map without any cell pixel is one single segment (the watershed's only basin).
3. The dam pixels left inside ground-truth cells are each a segment of their own (singletons), as in
   the adapted Rand error (:py:mod:`~monai_unet2015.metrics.rand`).
4. The best score over the thresholds is reported.

:py:func:`thin_borders` floods the membranes breadth-first, one geodesic-distance layer at a time
(vectorised over each layer, no loop over pixels): a pixel takes the label of its neighbours flooded
in earlier layers, or becomes a dam if they carry two labels. Within a layer a pixel also sees its
neighbours that precede it in raster order, as if they had been flooded just before it (Fiji floods
first-in-first-out): a different label there makes it a dam (so dams stay one pixel wide on membranes
of even width), and a pixel that met only dams takes their label. Fiji's queue order is not raster
order in every layer, so a dam can sit one pixel away from Fiji's; on ISBI 2012 maps the scores agree
with a port of Fiji's algorithm to about 1e-3 (tested), and exactly on straight membranes.

:py:func:`v_scores` compares two label maps directly; :py:func:`v_rand` and :py:func:`v_info` sweep a
probability map over thresholds; :py:class:`VRandMetric` and :py:class:`VInfoMetric` accumulate an
evaluation (handlers: :py:class:`monai_unet2015.handlers.VRand`, :py:class:`monai_unet2015.handlers.VInfo`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from scipy import ndimage as ndi

from monai_unet2015.transforms.instances.connectivity import check_connectivity

from ._validation import check_choice, check_label_map, check_thresholds, to_numpy
from .contingency import contingency_table
from .sweep import DEFAULT_THRESHOLDS, _cells, _prepare, _ThresholdSweepMetric

__all__ = [
    "VScores",
    "VScoreResult",
    "thin_borders",
    "v_scores",
    "v_rand",
    "v_info",
    "VRandMetric",
    "VInfoMetric",
]

_AVERAGES = ("pooled", "images")

#: Columns of the per-image statistics (float64 counts over the ground-truth foreground): number of
#: pixels ``N``, ``sum n_ij^2``, ``sum t_j^2``, ``sum s_i^2``, ``sum n_ij log n_ij``, ``sum t_j log t_j``,
#: ``sum s_i log s_i`` (``n`` = pixel counts, singletons included). They add up over images.
_STAT_FIELDS = ("n", "sum_p2", "sum_t2", "sum_s2", "sum_plogp", "sum_tlogt", "sum_slogs")


class VScores(NamedTuple):
    """V_rand and V_info of two label maps with their split and merge parts (1 = perfect)."""

    v_rand: float
    v_rand_split: float
    v_rand_merge: float
    v_info: float
    v_info_split: float
    v_info_merge: float


class VScoreResult(NamedTuple):
    """Best V score over binarisation thresholds, its split and merge parts, and the sweep.

    Examples::

        >>> import numpy as np
        >>> y = np.zeros((5, 7)); y[:, 3] = 1  # two cells separated by a membrane column
        >>> r = v_rand(0.9 * y, y, thresholds=(0.5, 0.95))  # at 0.95 the membrane is missed
        >>> r.score, r.threshold, r.scores.round(4).tolist()
        (1.0, 0.5, [1.0, 0.6667])
        >>> r.splits.tolist(), r.merges.tolist()
        ([1.0, 1.0], [1.0, 0.5])
    """

    score: float
    """The highest score over ``thresholds`` (``nan`` if undefined at every threshold)."""
    split: float
    """The split part (``V_split``) at the best threshold."""
    merge: float
    """The merge part (``V_merge``) at the best threshold."""
    threshold: float
    """The threshold giving ``score`` (the first one on ties)."""
    scores: np.ndarray
    """The score at each threshold, shape ``(T,)``."""
    splits: np.ndarray
    """The split part at each threshold, shape ``(T,)``."""
    merges: np.ndarray
    """The merge part at each threshold, shape ``(T,)``."""
    thresholds: np.ndarray
    """The thresholds, shape ``(T,)``."""


# --------------------------------------------------------------------------------------------------
# Border thinning (watershed flooding of the predicted membranes)
# --------------------------------------------------------------------------------------------------


def _neighbour_offsets(shape: tuple[int, ...], connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinate offsets ``(M, ndim)`` of the neighbourhood and their flat (C-order) offsets ``(M,)``."""
    deltas = np.argwhere(ndi.generate_binary_structure(len(shape), connectivity)) - 1
    deltas = deltas[np.any(deltas != 0, axis=1)]
    strides = np.cumprod((1,) + tuple(shape[:0:-1]))[::-1]  # C-order element strides
    return deltas, deltas @ strides


def _flood(cells: np.ndarray, connectivity: int) -> np.ndarray:
    """Labels of the cell components grown over the membrane pixels; 0 on the one-pixel dams."""
    shape = cells.shape
    structure = ndi.generate_binary_structure(cells.ndim, connectivity)
    lab, n = ndi.label(cells, structure)
    if n == 0:  # no basin: the watershed of a constant image is a single basin
        return np.ones(shape, dtype=np.int64)
    lab = lab.astype(np.int64).ravel()
    done = cells.ravel().copy()
    deltas, flat = _neighbour_offsets(shape, connectivity)
    earlier = flat < 0  # neighbours that precede a pixel in raster order
    dims = np.asarray(shape)[:, None]
    tentative = np.zeros(lab.size, dtype=np.int64)  # labels of the current layer only
    position = np.full(lab.size, -1, dtype=np.int64)  # index in the current layer, -1 outside
    big = np.iinfo(np.int64).max
    front = np.flatnonzero(ndi.binary_dilation(cells, structure) & ~cells)
    while front.size:
        coords = np.asarray(np.unravel_index(front, shape))
        lo = np.full(front.size, big, dtype=np.int64)
        hi = np.zeros(front.size, dtype=np.int64)
        neighbours = []
        for d, f in zip(deltas, flat):
            nc = coords + d[:, None]
            ok = np.all((nc >= 0) & (nc < dims), axis=0)
            idx = np.where(ok, front + f, 0)
            lab_nb = np.where(ok, lab[idx], 0)  # 0 for dams and for pixels not flooded yet
            hi = np.maximum(hi, lab_nb)
            lo = np.where(lab_nb > 0, np.minimum(lo, lab_nb), lo)
            neighbours.append((ok, idx))
        # the labels met in earlier layers: one -> take it, two or more -> a dam (-1), none -> 0 (dams only)
        base = np.where(hi > 0, np.where(lo == hi, hi, -1), 0)
        # the neighbours of the same layer that precede a pixel in raster order count as flooded before it
        # (as in Fiji's first-in-first-out order): another label there makes it a dam, and a pixel that met
        # only dams in earlier layers takes the label found there. Each pixel depends on earlier ones only,
        # so re-evaluating the pixels after those that changed, until nothing changes, gives the result of
        # flooding the layer pixel by pixel in raster order.
        new = np.where(base > 0, base, 0)
        tentative[front] = new
        position[front] = np.arange(front.size)
        active = np.arange(front.size)
        while active.size:
            e_lo = np.full(active.size, big, dtype=np.int64)
            e_hi = np.zeros(active.size, dtype=np.int64)
            for (ok, idx), e in zip(neighbours, earlier):
                if e:
                    other = np.where(ok[active], tentative[idx[active]], 0)
                    e_hi = np.maximum(e_hi, other)
                    e_lo = np.where(other > 0, np.minimum(e_lo, other), e_lo)
            one = (e_hi > 0) & (e_lo == e_hi)
            b = base[active]
            keep = (e_hi == 0) | (one & (e_hi == b))  # no earlier neighbour of another label
            value = np.where(b > 0, np.where(keep, b, 0), np.where((b == 0) & one, e_hi, 0))
            diff = value != new[active]
            changed = active[diff]
            new[changed] = value[diff]
            tentative[front[changed]] = new[changed]
            later = [idx[changed][ok[changed]] for (ok, idx), e in zip(neighbours, earlier) if not e]
            later = position[np.concatenate(later)] if later else np.zeros(0, dtype=np.int64)
            active = np.unique(later[later >= 0])
        position[front] = -1
        tentative[front] = 0
        lab[front] = new
        done[front] = True
        nxt = np.concatenate([idx[ok] for ok, idx in neighbours])
        front = np.unique(nxt[~done[nxt]])
    return lab.reshape(shape)


def thin_borders(cells, connectivity: int = 1) -> np.ndarray:
    """Segment a binary cell mask with one-pixel borders, as the ISBI 2012 leaderboard's border thinning.

    The connected components of ``cells`` (``connectivity``: 1 = 4-connected in 2D, as Fiji) are the
    basins of a watershed flooding the non-cell (membrane) pixels breadth-first: each membrane pixel
    joins the segment that reaches it first; where two segments meet, one pixel becomes a dam (label 0).
    Thick membranes thus shrink to one-pixel lines and the cells grow up to them; a one-pixel membrane
    between two cells stays. A mask without any cell pixel gives one segment (label 1 everywhere), as
    the watershed of a constant image. The tie rules are in the module docstring
    (:py:mod:`monai_unet2015.metrics.vscores`).

    Args:
        cells: binary mask (True / 1 = cell), any number of dimensions.
        connectivity: neighbourhood of the components and of the flooding, 1 .. ``cells.ndim``.

    Returns:
        int64 label map of the same shape: segments ``1..n`` (numbered as ``scipy.ndimage.label``
        numbers the cell components), 0 on the dams.

    Examples::

        >>> import numpy as np
        >>> cells = np.array([[1, 1, 0, 0, 0, 1, 1]], dtype=bool)  # a 3-pixel membrane between two cells
        >>> thin_borders(cells).tolist()
        [[1, 1, 1, 0, 2, 2, 2]]
        >>> thin_borders(np.array([[1, 0, 0, 1]], dtype=bool)).tolist()  # even width: the later pixel
        [[1, 1, 0, 2]]
    """
    func = "thin_borders"
    mask = check_label_map(to_numpy(cells, "cells", func), "cells", func, binary=True)
    if mask.ndim < 1:
        raise ValueError(f"{func}: cells must be an array with at least one dimension, got a scalar.")
    connectivity = check_connectivity(connectivity, mask.ndim, func, allow_none=False)
    return _flood(mask, connectivity)


# --------------------------------------------------------------------------------------------------
# Statistics and scores
# --------------------------------------------------------------------------------------------------


def _xlogx(x: np.ndarray) -> float:
    """``sum x log x``, summed in sorted order: equal multisets of sizes give bit-equal sums (perfect -> 1.0)."""
    x = np.sort(x[x > 0])
    return float(np.dot(x, np.log(x)))


def _v_stats(labels_true: np.ndarray, labels_pred: np.ndarray) -> np.ndarray:
    """The seven additive counts of :data:`_STAT_FIELDS` over the pixels with ``labels_true > 0``."""
    fg = labels_true > 0
    a, b, n = contingency_table(labels_true[fg], labels_pred[fg])
    if n.size == 0:
        return np.zeros(len(_STAT_FIELDS))
    n = n.astype(np.float64)
    _, a_dense = np.unique(a, return_inverse=True)
    t = np.bincount(a_dense, weights=n)  # ground-truth object sizes
    inside = b > 0
    _, b_dense = np.unique(b[inside], return_inverse=True)
    s = np.bincount(b_dense, weights=n[inside]) if inside.any() else np.zeros(0)  # predicted segment sizes
    singletons = float(n[~inside].sum())  # predicted 0 inside true objects: one segment per pixel
    n_in = n[inside]
    return np.array(
        [
            float(n.sum()),
            float(np.dot(n_in, n_in)) + singletons,
            float(np.dot(t, t)),
            float(np.dot(s, s)) + singletons,
            _xlogx(n_in),  # singletons add 1 log 1 = 0 to the three x log x sums
            _xlogx(t),
            _xlogx(s),
        ]
    )


def _rand_parts(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(V_rand, split, merge)`` from (pooled) statistics ``(..., 7)``; ``nan`` without foreground."""
    n, p2, t2, s2 = (np.asarray(stats, dtype=np.float64)[..., k] for k in range(4))
    ok = n > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(ok, 2.0 * p2 / np.where(ok, s2 + t2, 1.0), np.nan)
        split = np.where(ok, p2 / np.where(ok, t2, 1.0), np.nan)
        merge = np.where(ok, p2 / np.where(ok, s2, 1.0), np.nan)
    return score, split, merge


def _entropies(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(H(S), H(T), I(S;T), ok)`` in nats from (pooled) statistics; round-off snapped to exact zeros."""
    st = np.asarray(stats, dtype=np.float64)
    n, plogp, tlogt, slogs = st[..., 0], st[..., 4], st[..., 5], st[..., 6]
    ok = n > 0
    nn = np.where(ok, n, 1.0)
    log_n = np.log(nn)
    h_s = log_n - slogs / nn
    h_t = log_n - tlogt / nn
    h_st = log_n - plogp / nn
    tol = 64 * np.finfo(np.float64).eps * np.maximum(1.0, log_n)  # the least non-zero entropy is ~ log(N)/N
    h_s = np.where(h_s > tol, h_s, 0.0)
    h_t = np.where(h_t > tol, h_t, 0.0)
    mi = np.clip(h_s + h_t - h_st, 0.0, np.minimum(h_s, h_t))
    return h_s, h_t, mi, ok


def _info_parts(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(V_info, split, merge)``; a part whose entropy is 0 (one segment) scores 1 (nothing to split/merge)."""
    h_s, h_t, mi, ok = _entropies(stats)
    with np.errstate(divide="ignore", invalid="ignore"):
        split = np.where(h_s > 0, mi / np.where(h_s > 0, h_s, 1.0), 1.0)
        merge = np.where(h_t > 0, mi / np.where(h_t > 0, h_t, 1.0), 1.0)
        score = np.where(h_s + h_t > 0, 2.0 * mi / np.where(h_s + h_t > 0, h_s + h_t, 1.0), 1.0)
    nan = np.full(np.shape(ok), np.nan)
    return np.where(ok, score, nan), np.where(ok, split, nan), np.where(ok, merge, nan)


def v_scores(labels_true, labels_pred) -> VScores:
    """Foreground-restricted V_rand and V_info of two label maps, with their split and merge parts.

    Only the pixels with ``labels_true > 0`` count; each of them with ``labels_pred == 0`` is a segment
    of its own (a singleton), as Fiji's ``RandError`` / ``VariationOfInformation`` do with the
    watershed dams. No thresholding or thinning is done here (see :py:func:`v_rand`, :py:func:`v_info`).
    With ``S = labels_pred``, ``T = labels_true`` and the joint distribution ``p_ij`` over the
    ground-truth foreground::

        V_rand_split = sum p_ij^2 / sum t_j^2,   V_rand_merge = sum p_ij^2 / sum s_i^2,
        V_rand = 2 sum p_ij^2 / (sum s_i^2 + sum t_j^2)
        V_info_split = I(S;T) / H(S),            V_info_merge = I(S;T) / H(T),
        V_info = 2 I(S;T) / (H(S) + H(T))

    When ``H(S) = 0`` (one predicted segment) ``V_info_split = 1``, when ``H(T) = 0`` (one true object)
    ``V_info_merge = 1``, and when both are 0 (the same single segment) ``V_info = 1``. (Fiji returns 0
    in these degenerate cases; the definitions give 0/0.)

    Args:
        labels_true: ground-truth label map (non-negative integers, 0 = ignored), any dimension.
        labels_pred: predicted label map of the same shape (0 = unassigned, scored as singletons).

    Returns:
        ``VScores(v_rand, v_rand_split, v_rand_merge, v_info, v_info_split, v_info_merge)``; ``nan``
        where undefined (no ground-truth foreground).

    Examples::

        >>> import numpy as np
        >>> gt = np.array([[1, 1, 1, 1, 2, 2, 2, 2]])
        >>> s = v_scores(gt, np.array([[1, 1, 3, 3, 2, 2, 2, 2]]))  # object 1 split into halves
        >>> round(s.v_rand, 4), s.v_rand_split, s.v_rand_merge  # sum p^2 = 24, sum t^2 = 32, sum s^2 = 24
        (0.8571, 0.75, 1.0)
        >>> round(s.v_info, 4), round(s.v_info_split, 4), s.v_info_merge  # I = H(T) = log 2, H(S) = 1.5 log 2
        (0.8, 0.6667, 1.0)
    """
    func = "v_scores"
    t = check_label_map(to_numpy(labels_true, "labels_true", func), "labels_true", func)
    p = check_label_map(to_numpy(labels_pred, "labels_pred", func), "labels_pred", func)
    if t.shape != p.shape:
        raise ValueError(f"{func}: labels_true and labels_pred must have the same shape, got {t.shape} and {p.shape}.")
    stats = _v_stats(t, p)
    rand = _rand_parts(stats)
    info = _info_parts(stats)
    return VScores(*(float(v) for v in rand + info))


# --------------------------------------------------------------------------------------------------
# Threshold sweep
# --------------------------------------------------------------------------------------------------


def _sweep_stats(
    prob: np.ndarray, gt_cell: np.ndarray, thresholds: np.ndarray, polarity: str, connectivity: int, thinning: bool
) -> np.ndarray:
    """``(T, 7)`` statistics of one image at every threshold."""
    structure = ndi.generate_binary_structure(prob.ndim, connectivity)
    gt_lab, _ = ndi.label(gt_cell, structure)
    out = np.zeros((thresholds.size, len(_STAT_FIELDS)))
    for k, th in enumerate(thresholds):
        cells = _cells(prob, th, polarity)
        pred = _flood(cells, connectivity) if thinning else ndi.label(cells, structure)[0]
        out[k] = _v_stats(gt_lab, pred)
    return out


def _parts(stats: np.ndarray, kind: str):
    return _rand_parts(stats) if kind == "rand" else _info_parts(stats)


def _nanmean0(x: np.ndarray) -> np.ndarray:
    count = np.sum(~np.isnan(x), axis=0)
    total = np.nansum(x, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)


def _v_result(stats: np.ndarray, thresholds: np.ndarray, kind: str, average: str) -> VScoreResult:
    """Best threshold of ``(B, T, 7)`` statistics, pooled over images or averaged per image."""
    if average == "pooled":
        scores, splits, merges = _parts(stats.sum(axis=0), kind)
    else:  # mean of the per-image values, images without ground-truth foreground skipped
        scores, splits, merges = (_nanmean0(v) for v in _parts(stats, kind))
    if scores.size == 0 or np.all(np.isnan(scores)):
        nan = float("nan")
        return VScoreResult(nan, nan, nan, nan, scores, splits, merges, thresholds)
    k = int(np.nanargmax(scores))
    return VScoreResult(
        float(scores[k]), float(splits[k]), float(merges[k]), float(thresholds[k]), scores, splits, merges, thresholds
    )


def _v_sweep(func: str, kind: str, y_pred, y, thresholds, polarity, connectivity, thinning, average):
    average = check_choice(average, "average", _AVERAGES, func)
    thinning = _check_bool(thinning, "thinning", func)
    thr = check_thresholds(thresholds, func)
    p, gt_cell, polarity = _prepare(y_pred, y, polarity, func)
    connectivity = check_connectivity(connectivity, p.ndim - 1, func, allow_none=False)
    stats = np.stack([_sweep_stats(p[b], gt_cell[b], thr, polarity, connectivity, thinning) for b in range(p.shape[0])])
    return _v_result(stats, thr, kind, average)


def _check_bool(value, name: str, func: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{func}: {name} must be True or False, got {value!r}.")
    return bool(value)


def v_rand(
    y_pred,
    y,
    thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
    polarity: str = "membrane",
    connectivity: int = 1,
    thinning: bool = True,
    average: str = "pooled",
) -> VScoreResult:
    """ISBI 2012 leaderboard V_rand: foreground-restricted Rand score after border thinning, best over thresholds.

    At each threshold the ground-truth cells (connected components) are compared with the proposal's
    segments after border thinning (:py:func:`thin_borders`) on the ground-truth cell pixels only::

        V_rand = 2 sum p_ij^2 / (sum s_i^2 + sum t_j^2)
        split = sum p_ij^2 / sum t_j^2,  merge = sum p_ij^2 / sum s_i^2

    (``N^2`` normalisation: ordered pixel pairs including a pixel with itself, as Fiji; dam pixels inside
    true cells are singletons.) ``1 - V_rand`` with ``thinning=False`` is the adapted Rand error of
    :py:func:`~monai_unet2015.metrics.rand_error`. The highest score over the thresholds is reported.

    Args:
        y_pred: probability map in [0, 1], ``(H, W)`` or batch-first channel-first ``(B, 1, H, W)`` /
            ``(B, 1, D, H, W)``; numpy or torch.
        y: binary ground truth (0/1 or bool) of the same shape.
        thresholds: binarisation level(s) in [0, 1]; default 0.1, 0.2, ..., 0.9. A pixel is predicted
            as the class named by ``polarity`` when ``y_pred > t``.
        polarity: what 1 means in ``y_pred`` and ``y``: ``"membrane"`` (default) or ``"cell"`` (as the
            challenge's label PNGs, 255 = cell, and its submissions, 1 = cell).
        connectivity: neighbourhood of the cell components and of the border flooding: 1 (default,
            4-connected in 2D / 6 in 3D, as the challenge) up to the number of spatial dimensions.
        thinning: ``True`` (default, the leaderboard's scores): thin the predicted borders first (see
            :py:func:`thin_borders`); ``False``: predicted cells are the plain connected components and
            every predicted membrane pixel inside a true cell is a singleton.
        average: ``"pooled"`` (default): the counts of all images are added up at each threshold before
            the scores are taken (pixels pair only within their image), one best threshold for the set;
            ``"images"``: the per-image scores (and parts) are averaged at each threshold, images
            without ground-truth cells skipped, as Fiji's stack evaluation does for V_info.

    Returns:
        ``VScoreResult(score, split, merge, threshold, scores, splits, merges, thresholds)``.

    Examples::

        >>> import numpy as np
        >>> y = np.zeros((5, 7)); y[:, 3] = 1  # two cells separated by a membrane column
        >>> v_rand(y, y).score
        1.0
        >>> r = v_rand(np.zeros((5, 7)), y)  # the membrane is missed: the two cells merge
        >>> round(r.score, 4), r.split, r.merge
        (0.6667, 1.0, 0.5)
    """
    return _v_sweep("v_rand", "rand", y_pred, y, thresholds, polarity, connectivity, thinning, average)


def v_info(
    y_pred,
    y,
    thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
    polarity: str = "membrane",
    connectivity: int = 1,
    thinning: bool = True,
    average: str = "pooled",
) -> VScoreResult:
    """ISBI 2012 leaderboard V_info: foreground-restricted information theoretic score after border thinning.

    At each threshold, as :py:func:`v_rand` but with the mutual information ``I(S;T)`` and the entropies
    of the proposal ``S`` and the ground truth ``T`` over the ground-truth cell pixels::

        V_info = 2 I(S;T) / (H(S) + H(T)),  split = I(S;T) / H(S),  merge = I(S;T) / H(T)

    A single segment (zero entropy) scores 1 on the part it cannot fail (see :py:func:`v_scores`). The
    highest score over the thresholds is reported. Fiji averages V_info over the slices of a stack:
    ``average="images"`` does the same.

    Args:
        y_pred, y, thresholds, polarity, connectivity, thinning, average: as :py:func:`v_rand`.

    Returns:
        ``VScoreResult(score, split, merge, threshold, scores, splits, merges, thresholds)``.

    Examples::

        >>> import numpy as np
        >>> y = np.zeros((5, 11)); y[:, [3, 7]] = 1  # three cells separated by two membrane columns
        >>> v_info(y, y).score
        1.0
        >>> p = y.copy(); p[:, 7] = 0  # the second membrane is missed: two of the cells merge
        >>> r = v_info(p, y)
        >>> round(r.score, 4), r.split, round(r.merge, 4)  # I = H(S) = log 3 - (2/3) log 2, H(T) = log 3
        (0.7337, 1.0, 0.5794)
    """
    return _v_sweep("v_info", "info", y_pred, y, thresholds, polarity, connectivity, thinning, average)


# --------------------------------------------------------------------------------------------------
# MONAI metrics
# --------------------------------------------------------------------------------------------------


class _VScoreMetric(_ThresholdSweepMetric):
    """Buffers per-image statistics ``(B, T, 7)``; ``aggregate`` returns the best (highest) score."""

    _kind = "rand"

    def __init__(
        self,
        thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
        polarity: str = "membrane",
        connectivity: int = 1,
        thinning: bool = True,
        average: str = "pooled",
    ) -> None:
        super().__init__(thresholds, polarity)
        name = type(self).__name__
        self.connectivity = check_connectivity(connectivity, None, name, allow_none=False)
        self.thinning = _check_bool(thinning, "thinning", name)
        self.average = check_choice(average, "average", _AVERAGES, name)

    def _image_stats(self, prob: np.ndarray, gt_cell: np.ndarray) -> np.ndarray:
        conn = check_connectivity(self.connectivity, prob.ndim, type(self).__name__, allow_none=False)
        return _sweep_stats(prob, gt_cell, self.thresholds, self.polarity, conn, self.thinning)

    def aggregate_details(self) -> VScoreResult:  # type: ignore[override]
        """The pooled result: best score, its split and merge parts, its threshold, and the sweep."""
        return _v_result(self._stats(), self.thresholds, self._kind, self.average)

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """The best (highest) score over the thresholds, over all buffered images (a 0-d tensor).

        :py:meth:`aggregate_details` also gives the split and merge parts and the threshold.
        """
        return torch.tensor(self.aggregate_details().score, dtype=torch.float64)


class VRandMetric(_VScoreMetric):
    """ISBI 2012 leaderboard V_rand as a MONAI cumulative metric (see :py:func:`v_rand`; higher is better).

    Each call buffers per-image statistics ``(B, T, 7)`` (pixel count, ``sum p^2``, ``sum t^2``,
    ``sum s^2``, ``sum p log p``, ``sum t log t``, ``sum s log s`` at each threshold);
    :py:meth:`aggregate` returns the highest V_rand over the thresholds, :py:meth:`aggregate_details` a
    :py:class:`VScoreResult` with the split and merge parts and the threshold.

    Args:
        thresholds: binarisation level(s) in [0, 1]; default 0.1, ..., 0.9.
        polarity: ``"membrane"`` (1 = membrane, default) or ``"cell"`` (1 = cell), for ``y_pred`` and ``y``.
        connectivity: 1 (4-connected in 2D, 6 in 3D, default) up to the number of spatial dimensions.
        thinning: thin the predicted borders before scoring (default ``True``, the leaderboard's scores).
        average: ``"pooled"`` (default, counts added over all images) or ``"images"`` (mean of per-image scores).

    Examples::

        >>> import torch
        >>> y = torch.zeros(2, 1, 5, 7); y[..., 3] = 1
        >>> metric = VRandMetric()
        >>> _ = metric(y_pred=torch.zeros_like(y), y=y)  # the separating membranes are missed
        >>> details = metric.aggregate_details()
        >>> round(float(metric.aggregate()), 4), details.split, details.merge
        (0.6667, 1.0, 0.5)
    """

    _kind = "rand"


class VInfoMetric(_VScoreMetric):
    """ISBI 2012 leaderboard V_info as a MONAI cumulative metric (see :py:func:`v_info`; higher is better).

    Buffers the same per-image statistics as :py:class:`VRandMetric`; :py:meth:`aggregate` returns the
    highest V_info over the thresholds.

    Args:
        thresholds, polarity, connectivity, thinning, average: as :py:class:`VRandMetric`.

    Examples::

        >>> import torch
        >>> y = torch.zeros(1, 1, 5, 11); y[..., [3, 7]] = 1
        >>> metric = VInfoMetric(average="images")
        >>> _ = metric(y_pred=y, y=y)
        >>> float(metric.aggregate()), metric.aggregate_details().threshold
        (1.0, 0.1)
    """

    _kind = "info"

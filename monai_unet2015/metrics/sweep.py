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

"""Threshold sweeps of the ISBI 2012 errors: per-image statistics at every binarisation level, pooled, best level.

The challenge thresholds a membrane probability map at several levels and reports the best error over
them. Every error here is a ratio of counts, so each image contributes a small ``(T, K)`` array of counts
(``T`` thresholds, ``K`` counts per threshold); a batch, or a whole evaluation, pools the counts by
summing before the ratios are taken and the best threshold chosen, as the challenge did for its test
stack. The plain functions of :py:mod:`monai_unet2015.metrics.isbi2012` and the MONAI metric classes,
whose base :py:class:`_ThresholdSweepMetric` is here, share these statistics:

- pixel error: true/false positives/negatives of the cell pixels (``K = 4``);
- Rand error: the adapted Rand sums ``[AB, A, B]`` (``K = 3``, :py:mod:`monai_unet2015.metrics.rand`);
- warping error: remaining disagreements after warping, pixel count, and the six topological error
  counts (``K = 8``, :py:mod:`monai_unet2015.metrics.simple_point`, :py:mod:`monai_unet2015.metrics.topology`).
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
    buffered,
    check_batch,
    check_choice,
    check_label_map,
    check_probability,
    check_thresholds,
    to_numpy,
)
from .rand import _rand_from_sums, _rand_sums
from .simple_point import _warp_binary
from .topology import _structures, _topological_errors

__all__ = ["DEFAULT_THRESHOLDS", "ThresholdSweep", "WarpingErrorResult"]

#: Binarisation levels tried by default: 0.1, 0.2, ..., 0.9 (the challenge's script swept 0.0 to 1.0
#: in steps of 0.1; the two end levels give an all-one or all-zero map for most probability maps).
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(1, 10))

_POLARITIES = ("membrane", "cell")


class ThresholdSweep(NamedTuple):
    """Best error over binarisation thresholds, and the error at every threshold.

    Examples::

        >>> import numpy as np
        >>> from monai_unet2015.metrics import pixel_error
        >>> y = np.zeros((4, 4)); y[:, 0] = 1  # membrane on the left column
        >>> r = pixel_error(0.8 * y, y, thresholds=(0.5, 0.9))  # at 0.9 the membrane is missed
        >>> r.error, r.threshold, r.errors.tolist()
        (0.0, 0.5, [0.0, 0.25])
    """

    error: float
    """The lowest error over ``thresholds`` (``nan`` if undefined at every threshold)."""
    threshold: float
    """The threshold giving ``error`` (the first one on ties)."""
    errors: np.ndarray
    """The error at each threshold, shape ``(T,)``."""
    thresholds: np.ndarray
    """The thresholds, shape ``(T,)``."""


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
# Binarisation and input layout
# --------------------------------------------------------------------------------------------------


def _cells(prob: np.ndarray, threshold: float, polarity: str) -> np.ndarray:
    above = prob > threshold
    return above if polarity == "cell" else ~above


def _prepare(y_pred, y, polarity: str, func: str, spatial: Sequence[int] = (2, 3)):
    polarity = check_choice(polarity, "polarity", _POLARITIES, func)
    p = to_numpy(y_pred, "y_pred", func)
    g = to_numpy(y, "y", func)
    p, g = batch_layout(p, g, func, spatial)
    p = check_probability(p, "y_pred", func)
    g = check_label_map(g, "y", func, binary=True)
    return p, (g if polarity == "cell" else ~g), polarity


# --------------------------------------------------------------------------------------------------
# Per-image statistics at every threshold
# --------------------------------------------------------------------------------------------------


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
        warped = _warp_binary(gt_cell, pred, np.abs(prob - th), connectivity)
        out[k, 0] = np.count_nonzero(warped != pred)
        out[k, 1] = pred.size
        out[k, 2:] = _topological_errors(warped, pred, connectivity)
    return out


# --------------------------------------------------------------------------------------------------
# Pooled errors and the best threshold
# --------------------------------------------------------------------------------------------------


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
# Base of the MONAI metrics
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
        check_batch(y_pred, y, func, self._spatial)
        p, gt_cell, _ = _prepare(y_pred, y, self.polarity, func, self._spatial)
        stats = np.stack([self._image_stats(p[b], gt_cell[b]) for b in range(p.shape[0])])
        return torch.as_tensor(stats, dtype=torch.float64, device=y_pred.device)

    def _stats(self) -> np.ndarray:
        return buffered(self).detach().cpu().numpy()

    def aggregate_details(self) -> ThresholdSweep:
        """The pooled result: best error, its threshold, and the error at every threshold."""
        raise NotImplementedError

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """The best (lowest) error over the thresholds, pooled over all buffered images (a 0-d tensor).

        :py:meth:`aggregate_details` also gives the threshold and the error at every threshold.
        """
        return torch.tensor(self.aggregate_details().error, dtype=torch.float64)

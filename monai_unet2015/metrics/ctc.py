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

"""Cell Tracking Challenge measures: foreground IoU and the SEG measure (U-Net paper, Table 2).

- Foreground IoU (Jaccard index) of the binary foreground of two label maps.
- SEG (Maska et al. 2014, Bioinformatics 30:1609; Ulman et al. 2017, Nat. Methods 14:1141): a
  reference object ``R`` is matched by the predicted object ``S`` with ``|R & S| > 0.5 |R|`` (there is
  at most one); its score is the Jaccard index ``|R & S| / |R | S|``, or 0 without a match. SEG is the
  mean score over all reference objects.

Both work on 2D and 3D label maps; SEG is computed from one contingency table per image, with no
loop over objects.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction

from monai_unet2015.transforms.instances.relabel import relabel_sequential

from ._validation import batch_layout, buffered, check_batch, check_choice, check_label_map, check_probability, to_numpy
from .contingency import contingency_table

__all__ = ["SEGResult", "foreground_iou", "seg_measure", "ForegroundIoUMetric", "SEGMetric"]


class SEGResult(NamedTuple):
    """SEG measure with the score of every reference object."""

    seg: float
    """Mean score over all reference objects of all images (``nan`` without reference objects)."""
    jaccard: np.ndarray
    """Score of each reference object (0 when unmatched), image by image, by increasing label."""
    labels: np.ndarray
    """``(n, 2)``: image index in the batch and reference label of each entry of ``jaccard``."""


def _layout(y_pred, y, func: str) -> tuple[np.ndarray, np.ndarray]:
    p = to_numpy(y_pred, "y_pred", func)
    g = to_numpy(y, "y", func)
    return batch_layout(p, g, func, (2, 3))


def _foreground(y_pred: np.ndarray, threshold: float | None, func: str) -> np.ndarray:
    if threshold is None:
        return check_label_map(y_pred, "y_pred", func) > 0
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(
            f"{func}: threshold must be None (y_pred is a label map) or a float in [0, 1], got {threshold!r}."
        )
    return check_probability(y_pred, "y_pred", func) > threshold


def _iou(pred_fg: np.ndarray, gt_fg: np.ndarray, ignore_empty: bool) -> np.ndarray:
    axes = tuple(range(1, pred_fg.ndim))
    inter = np.count_nonzero(pred_fg & gt_fg, axis=axes).astype(np.float64)
    union = np.count_nonzero(pred_fg | gt_fg, axis=axes).astype(np.float64)
    empty_gt = np.count_nonzero(gt_fg, axis=axes) == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 1.0)
    if ignore_empty:
        iou = np.where(empty_gt, np.nan, iou)
    return iou


def foreground_iou(y_pred, y, threshold: float | None = None, ignore_empty: bool = True) -> torch.Tensor:
    """Intersection over union (Jaccard index) of the foreground (non-zero) pixels, per image.

    Args:
        y_pred: predicted label map (binary or instance labels, non-zero = foreground) or, with
            ``threshold``, a probability map in [0, 1]; ``(H, W)``, ``(B, 1, H, W)`` or ``(B, 1, D, H, W)``.
        y: reference label map of the same shape (binary or instance labels).
        threshold: ``None`` (default): ``y_pred`` is a label map; a float: foreground is ``y_pred > threshold``.
        ignore_empty: ``nan`` for images without reference foreground (default, as MONAI's ``MeanIoU``);
            otherwise 1 when the prediction is empty too and 0 if not.

    Returns:
        Tensor ``(B,)`` of IoU values (float64).

    Examples::

        >>> import numpy as np
        >>> y = np.zeros((4, 4), int); y[:2] = 1
        >>> pred = np.zeros((4, 4), int); pred[1:3] = 7
        >>> foreground_iou(pred, y).tolist()  # 4 shared pixels, 12 in the union
        [0.3333333333333333]
    """
    func = "foreground_iou"
    p, g = _layout(y_pred, y, func)
    pred_fg = _foreground(p, threshold, func)
    gt_fg = check_label_map(g, "y", func) > 0
    return torch.as_tensor(_iou(pred_fg, gt_fg, ignore_empty), dtype=torch.float64)


def _seg_image(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference labels (sorted) and their SEG scores for one image."""
    dense_pred, pred_values = relabel_sequential(pred)
    size_s = np.bincount(dense_pred.ravel())  # |S| over the whole image
    fg = ref > 0
    r, s, overlap = contingency_table(ref[fg], dense_pred[fg])
    ref_labels = np.unique(r)
    if ref_labels.size == 0:
        return ref_labels, np.zeros(0)
    r_dense = np.searchsorted(ref_labels, r)
    size_r = np.bincount(r_dense, weights=overlap).astype(np.int64)
    # |R & S| > 0.5 |R|: at most one predicted object S per reference object R
    matched = (pred_values[s] > 0) & (2 * overlap > size_r[r_dense])
    scores = np.zeros(ref_labels.size)
    inter = overlap[matched].astype(np.float64)
    rows = r_dense[matched]
    scores[rows] = inter / (size_r[rows] + size_s[s[matched]] - inter)
    return ref_labels, scores


def seg_measure(y_pred, y) -> SEGResult:
    """Cell Tracking Challenge SEG measure of predicted instance labels against reference labels.

    For each reference object ``R`` (label > 0 in ``y``), the predicted object ``S`` (label > 0 in
    ``y_pred``) with ``|R & S| > 0.5 |R|`` scores ``J = |R & S| / |R | S|``; without such ``S`` the
    score is 0. SEG is the mean over all reference objects of all images in the batch. Labels need
    not be consecutive; float arrays must hold integers.

    Args:
        y_pred: predicted instance label map, ``(H, W)``, ``(B, 1, H, W)`` or ``(B, 1, D, H, W)``.
        y: reference instance label map of the same shape.

    Returns:
        ``SEGResult(seg, jaccard, labels)``.

    Examples::

        >>> import numpy as np
        >>> ref = np.array([[1, 1, 1, 1, 0, 2, 2]])
        >>> pred = np.array([[5, 5, 5, 0, 0, 3, 0]])  # object 1: 3 of 4 pixels; object 2: only half
        >>> r = seg_measure(pred, ref)
        >>> r.jaccard.tolist(), r.seg
        ([0.75, 0.0], 0.375)
    """
    func = "seg_measure"
    p, g = _layout(y_pred, y, func)
    p = check_label_map(p, "y_pred", func)
    g = check_label_map(g, "y", func)
    labels, scores = [], []
    for b in range(p.shape[0]):
        lab, sc = _seg_image(p[b], g[b])
        labels.append(np.stack([np.full(lab.size, b), lab], axis=1))
        scores.append(sc)
    jac = np.concatenate(scores)
    return SEGResult(float(jac.mean()) if jac.size else float("nan"), jac, np.concatenate(labels).astype(np.int64))


class ForegroundIoUMetric(CumulativeIterationMetric):
    """Foreground IoU (Jaccard index) as a MONAI cumulative metric (see :py:func:`foreground_iou`).

    Each call buffers the per-image IoU ``(B, 1)``; :py:meth:`aggregate` reduces it with MONAI's
    ``do_metric_reduction`` (``nan`` values, images without reference foreground, are skipped).

    Args:
        threshold: ``None`` (``y_pred`` is a label map, non-zero = foreground) or a float in [0, 1]
            (``y_pred`` is a probability map, foreground where ``y_pred > threshold``).
        ignore_empty: give ``nan`` (skipped) for images without reference foreground.
        reduction: MONAI reduction mode (``"mean"``, ``"sum"``, ``"none"``, ...).
        get_not_nans: also return the number of values that were not ``nan``.

    Examples::

        >>> import torch
        >>> y = torch.zeros(2, 1, 4, 4); y[:, :, :2] = 1
        >>> metric = ForegroundIoUMetric()
        >>> _ = metric(y_pred=y.clone(), y=y)
        >>> float(metric.aggregate())
        1.0
    """

    def __init__(
        self,
        threshold: float | None = None,
        ignore_empty: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__()
        if threshold is not None:
            _foreground(np.zeros(1), threshold, type(self).__name__)  # validates the value
        self.threshold = threshold
        self.ignore_empty = ignore_empty
        self.reduction = reduction
        self.get_not_nans = get_not_nans

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """Per-image IoU ``(B, 1)`` for batch-first channel-first ``(B, 1, H, W)`` or ``(B, 1, D, H, W)`` inputs."""
        func = type(self).__name__
        check_batch(y_pred, y, func)
        p, g = _layout(y_pred, y, func)
        pred_fg = _foreground(p, self.threshold, func)
        gt_fg = check_label_map(g, "y", func) > 0
        iou = _iou(pred_fg, gt_fg, self.ignore_empty)
        return torch.as_tensor(iou[:, None], dtype=torch.float64, device=y_pred.device)

    def aggregate(self, reduction: MetricReduction | str | None = None):  # type: ignore[override]
        """Reduce the buffered per-image IoU; returns ``(value, not_nans)`` if ``get_not_nans``."""
        f, not_nans = do_metric_reduction(buffered(self).clone(), reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f


class SEGMetric(CumulativeIterationMetric):
    """Cell Tracking Challenge SEG measure as a MONAI cumulative metric (see :py:func:`seg_measure`).

    Each call buffers per image ``(B, 2)``: the sum of the reference objects' scores and their number.
    :py:meth:`aggregate` returns the challenge's SEG, the mean over all reference objects seen
    (``average="objects"``), or the mean of the per-image SEG values (``average="images"``; images
    without reference objects are skipped).

    Args:
        average: ``"objects"`` (default, the challenge's definition) or ``"images"``.

    Examples::

        >>> import torch
        >>> ref = torch.tensor([[[[1, 1, 1, 1, 0, 2, 2]]]])
        >>> metric = SEGMetric()
        >>> _ = metric(y_pred=torch.tensor([[[[5, 5, 5, 0, 0, 3, 0]]]]), y=ref)
        >>> float(metric.aggregate())
        0.375
    """

    def __init__(self, average: str = "objects") -> None:
        super().__init__()
        self.average = check_choice(average, "average", ("objects", "images"), type(self).__name__)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """Per-image ``[sum of scores, number of reference objects]`` ``(B, 2)`` for ``(B, 1, *spatial)`` inputs."""
        func = type(self).__name__
        check_batch(y_pred, y, func, y_is="the reference labels y are")
        p, g = _layout(y_pred, y, func)
        p = check_label_map(p, "y_pred", func)
        g = check_label_map(g, "y", func)
        out = np.zeros((p.shape[0], 2))
        for b in range(p.shape[0]):
            _, sc = _seg_image(p[b], g[b])
            out[b] = (sc.sum(), sc.size)
        return torch.as_tensor(out, dtype=torch.float64, device=y_pred.device)

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """The SEG measure over everything buffered (a 0-d tensor; ``nan`` without reference objects)."""
        data = buffered(self)
        total, count = data[:, 0], data[:, 1]
        if self.average == "objects":
            n = count.sum()
            return total.sum() / n if n > 0 else torch.tensor(float("nan"), dtype=torch.float64)
        has = count > 0
        if not bool(has.any()):
            return torch.tensor(float("nan"), dtype=torch.float64)
        return (total[has] / count[has]).mean()

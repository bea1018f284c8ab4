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

"""Adapted (foreground-restricted) Rand error of two label maps, as scored by SNEMI3D and ISBI 2012.

Arganda-Carreras et al. 2015 (Front. Neuroanat. 9:142) and Fiji's ``RandError``: pixel pairs inside
ground-truth objects only, ground-truth background ignored, each predicted background pixel inside a
ground-truth object a segment of its own. Everything reduces to the sparse contingency table of the
two maps (:py:func:`~monai_unet2015.metrics.contingency.contingency_table`), so there is no loop over
objects. :py:func:`~monai_unet2015.metrics.rand_error` sweeps it over binarisation thresholds of a
membrane probability map.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from monai.metrics import CumulativeIterationMetric

from ._validation import batch_layout, buffered, check_batch, check_choice, check_label_map, to_numpy
from .contingency import contingency_table

__all__ = ["RandScore", "adapted_rand_error", "AdaptedRandErrorMetric"]


class RandScore(NamedTuple):
    """Adapted Rand error with its precision and recall (``error = 1 - F-score``)."""

    error: float
    precision: float
    recall: float


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


class AdaptedRandErrorMetric(CumulativeIterationMetric):
    """Adapted Rand error of label maps (e.g. neurons) as a MONAI cumulative metric; see :py:func:`adapted_rand_error`.

    Each call buffers the pair counts ``[AB, A, B]`` of every image ``(B, 3)``; :py:meth:`aggregate` pools them
    over everything buffered (pixels pair only within their image) and returns ``1 - 2 AB / (A + B)``, as
    :py:func:`~monai_unet2015.metrics.rand_error` pools a batch. Unlike :py:func:`~monai_unet2015.metrics.rand_error`
    nothing is thresholded: ``y_pred`` is already a segmentation.

    Args:
        normalization: ``"n2"`` (default) or ``"pairs"``, see :py:func:`adapted_rand_error`.

    Examples::

        >>> import torch
        >>> gt = torch.tensor([[[[1, 1, 0, 2, 2]]]])
        >>> metric = AdaptedRandErrorMetric()
        >>> _ = metric(y_pred=torch.ones_like(gt), y=gt)  # the two objects merged
        >>> round(float(metric.aggregate()), 4)
        0.3333
    """

    def __init__(self, normalization: str = "n2") -> None:
        super().__init__()
        self.normalization = check_choice(normalization, "normalization", ("n2", "pairs"), type(self).__name__)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """Per-image ``[AB, A, B]`` ``(B, 3)`` of ``(B, 1, *spatial)`` label maps."""
        func = type(self).__name__
        check_batch(y_pred, y, func, y_is="the reference labels y are")
        p, g = batch_layout(to_numpy(y_pred, "y_pred", func), to_numpy(y, "y", func), func, (2, 3))
        p, g = check_label_map(p, "y_pred", func), check_label_map(g, "y", func)
        sums = np.stack([_rand_sums(g[b], p[b], self.normalization) for b in range(p.shape[0])])
        return torch.as_tensor(sums, dtype=torch.float64, device=y_pred.device)

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """The pooled adapted Rand error over everything buffered (a 0-d float64 tensor)."""
        err, _, _ = _rand_from_sums(buffered(self).sum(dim=0).cpu().numpy())
        return torch.tensor(float(err), dtype=torch.float64)

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

The building blocks live beside this module: :py:mod:`~monai_unet2015.metrics.rand` (adapted Rand
error of two label maps), :py:mod:`~monai_unet2015.metrics.simple_point` (simple points, warping),
:py:mod:`~monai_unet2015.metrics.topology` (splits, mergers and other topological errors) and
:py:mod:`~monai_unet2015.metrics.sweep` (per-image statistics at every threshold, pooling, best threshold).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from monai_unet2015.transforms.instances.connectivity import check_connectivity

from ._validation import check_choice, check_thresholds
from .sweep import (
    DEFAULT_THRESHOLDS,
    ThresholdSweep,
    WarpingErrorResult,
    _best,
    _pixel_errors,
    _pixel_stats,
    _prepare,
    _rand_errors,
    _rand_stats,
    _ThresholdSweepMetric,
    _warping_result,
    _warping_stats,
)

__all__ = [
    "pixel_error",
    "rand_error",
    "warping_error",
    "PixelErrorMetric",
    "RandErrorMetric",
    "WarpingErrorMetric",
]


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
    pixels, in the ground truth and in the binarised prediction; :py:func:`~monai_unet2015.metrics.adapted_rand_error`
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
    connectivity = check_connectivity(connectivity, p.ndim - 1, func, allow_none=False)
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
    challenge's Fiji implementation (:py:func:`~monai_unet2015.metrics.warp_binary`). The pixels that
    still disagree cannot be fixed without changing the topology; the warping error is their fraction
    of all pixels, and :py:func:`~monai_unet2015.metrics.topological_errors` counts the splits, mergers
    and other topological errors they make. 2D only: simple points are defined on the 3x3
    neighbourhood here.

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
    connectivity = check_connectivity(connectivity, 2, func, allow_none=False)
    stats = np.stack([_warping_stats(p[b], gt_cell[b], thr, polarity, connectivity) for b in range(p.shape[0])])
    return _warping_result(stats, thr)


# --------------------------------------------------------------------------------------------------
# MONAI metrics
# --------------------------------------------------------------------------------------------------


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
        normalization: ``"n2"`` (default) or ``"pairs"``, see :py:func:`~monai_unet2015.metrics.adapted_rand_error`.

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
        # the range [1, ndim] once the images are seen: 2D and 3D batches may share the metric
        self.connectivity = check_connectivity(connectivity, None, type(self).__name__, allow_none=False)
        self.normalization = check_choice(normalization, "normalization", ("n2", "pairs"), "RandErrorMetric")

    def _image_stats(self, prob: np.ndarray, gt_cell: np.ndarray) -> np.ndarray:
        conn = check_connectivity(self.connectivity, prob.ndim, type(self).__name__, allow_none=False)
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
        self.connectivity = check_connectivity(connectivity, 2, type(self).__name__, allow_none=False)

    def _image_stats(self, prob: np.ndarray, gt_cell: np.ndarray) -> np.ndarray:
        return _warping_stats(prob, gt_cell, self.thresholds, self.polarity, self.connectivity)

    def aggregate_details(self) -> WarpingErrorResult:  # type: ignore[override]
        return _warping_result(self._stats(), self.thresholds)

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

"""Ignite handlers for the ISBI 2012 and Cell Tracking Challenge metrics, for MONAI evaluators.

Each handler wraps the matching :py:mod:`monai_unet2015.metrics` class in MONAI's
:py:class:`~monai.handlers.IgniteMetricHandler`, like :py:class:`monai.handlers.MeanDice`:
attach it to an evaluator (``val_handlers`` / ``key_val_metric``) and the aggregated value lands in
``engine.state.metrics[name]``. With ``save_details`` the per-image statistics go to
``engine.state.metric_details[name]``; the threshold-sweep handlers also put their summary (best
threshold, error at every threshold, topological counts) in ``engine.state.metric_details[name + "_summary"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from monai.handlers.ignite_metric import IgniteMetricHandler
from monai.utils import MetricReduction

from monai_unet2015.metrics.ctc import ForegroundIoUMetric, SEGMetric
from monai_unet2015.metrics.instance_matching import InstanceErrorMetric
from monai_unet2015.metrics.rand import AdaptedRandErrorMetric
from monai_unet2015.metrics.isbi2012 import PixelErrorMetric, RandErrorMetric, WarpingErrorMetric
from monai_unet2015.metrics.sweep import DEFAULT_THRESHOLDS

__all__ = ["PixelError", "RandError", "WarpingError", "ForegroundIoU", "SEGMeasure", "InstanceErrors", "AdaptedRandError"]


class _SummaryHandler(IgniteMetricHandler):
    """Records the metric's scalar, and keeps its summary (``metric_fn.aggregate_details()``) in ``self.details``."""

    def __init__(self, metric_fn, output_transform: Callable, save_details: bool) -> None:
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)
        self.details: Any = None

    def compute(self) -> Any:
        result = super().compute()
        self.details = self.metric_fn.aggregate_details()  # type: ignore[attr-defined]
        if self.save_details and self._engine is not None and self._name is not None:
            self._engine.state.metric_details[f"{self._name}_summary"] = self.details._asdict()  # type: ignore
        return result


class PixelError(_SummaryHandler):
    """ISBI 2012 pixel error over an evaluation (lower is better).

    See :py:class:`~monai_unet2015.metrics.PixelErrorMetric` and :py:func:`~monai_unet2015.metrics.pixel_error`.

    Args:
        thresholds: binarisation level(s) of the probability map in [0, 1]; default 0.1, ..., 0.9.
        polarity: ``"membrane"`` (1 = membrane, default) or ``"cell"`` (1 = cell), for prediction and label.
        mode: ``"disagreement"`` (fraction of differing pixels) or ``"fscore"`` (1 - F1 of cell pixels).
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``, e.g.
            ``monai.handlers.from_engine(["pred", "label"])``; ``y_pred`` one channel of probabilities.
        save_details: store per-image counts and the sweep summary in ``engine.state.metric_details``.

    Examples::

        >>> import torch
        >>> from ignite.engine import Engine
        >>> y = torch.zeros(1, 1, 8, 8); y[..., 4] = 1
        >>> engine = Engine(lambda engine, batch: batch)
        >>> PixelError().attach(engine, "pixel_error")
        >>> engine.run([(0.9 * y, y)]).metrics["pixel_error"]
        0.0
    """

    def __init__(
        self,
        thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
        polarity: str = "membrane",
        mode: str = "disagreement",
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = PixelErrorMetric(thresholds=thresholds, polarity=polarity, mode=mode)
        super().__init__(metric_fn, output_transform, save_details)


class RandError(_SummaryHandler):
    """ISBI 2012 Rand error over an evaluation (lower is better).

    See :py:class:`~monai_unet2015.metrics.RandErrorMetric` and :py:func:`~monai_unet2015.metrics.rand_error`.

    Args:
        thresholds: binarisation level(s) in [0, 1]; default 0.1, ..., 0.9.
        polarity: ``"membrane"`` (1 = membrane, default) or ``"cell"`` (1 = cell).
        connectivity: neighbourhood of the cell components, 1 (4-connected in 2D, 6 in 3D) or more.
        normalization: ``"n2"`` (default) or ``"pairs"``.
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``.
        save_details: store per-image sums and the sweep summary in ``engine.state.metric_details``.

    Examples::

        >>> import torch
        >>> from ignite.engine import Engine
        >>> y = torch.zeros(1, 1, 5, 7); y[..., 3] = 1
        >>> engine = Engine(lambda engine, batch: batch)
        >>> RandError().attach(engine, "rand_error")
        >>> round(engine.run([(torch.zeros_like(y), y)]).metrics["rand_error"], 4)
        0.3333
    """

    def __init__(
        self,
        thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
        polarity: str = "membrane",
        connectivity: int = 1,
        normalization: str = "n2",
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = RandErrorMetric(
            thresholds=thresholds, polarity=polarity, connectivity=connectivity, normalization=normalization
        )
        super().__init__(metric_fn, output_transform, save_details)


class WarpingError(_SummaryHandler):
    """ISBI 2012 warping error over an evaluation, 2D; see :py:class:`~monai_unet2015.metrics.WarpingErrorMetric`.

    ``handler.details`` (and, with ``save_details``, ``engine.state.metric_details[name + "_summary"]``)
    holds the best threshold and the splits, mergers and other topological errors at that threshold.

    Args:
        thresholds: binarisation level(s) in [0, 1]; default 0.1, ..., 0.9.
        polarity: ``"membrane"`` (1 = membrane, default) or ``"cell"`` (1 = cell).
        connectivity: 1 (cells 4-, membranes 8-connected, default) or 2 (the reverse).
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``.
        save_details: store per-image statistics and the summary in ``engine.state.metric_details``.

    Examples::

        >>> import torch
        >>> from ignite.engine import Engine
        >>> y = torch.ones(1, 1, 6, 6); y[..., 1:5, 1:5] = 0
        >>> cut = y.clone(); cut[..., 1:5, 3] = 1
        >>> engine = Engine(lambda engine, batch: batch)
        >>> handler = WarpingError(thresholds=0.5)
        >>> handler.attach(engine, "warping_error")
        >>> round(engine.run([(cut, y)]).metrics["warping_error"] * 36, 6), handler.details.splits
        (1.0, 1)
    """

    def __init__(
        self,
        thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
        polarity: str = "membrane",
        connectivity: int = 1,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = WarpingErrorMetric(thresholds=thresholds, polarity=polarity, connectivity=connectivity)
        super().__init__(metric_fn, output_transform, save_details)


class ForegroundIoU(IgniteMetricHandler):
    """Foreground IoU (Jaccard) averaged over images; see :py:class:`~monai_unet2015.metrics.ForegroundIoUMetric`.

    Args:
        threshold: ``None`` (``y_pred`` is a label map) or a float in [0, 1] for a probability map.
        ignore_empty: skip images without reference foreground.
        reduction: MONAI reduction mode, default ``"mean"``.
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``.
        save_details: store the per-image IoU in ``engine.state.metric_details[name]``.

    Examples::

        >>> import torch
        >>> from ignite.engine import Engine
        >>> y = torch.zeros(1, 1, 4, 4); y[..., :2, :] = 1
        >>> engine = Engine(lambda engine, batch: batch)
        >>> ForegroundIoU().attach(engine, "iou")
        >>> engine.run([(y, y)]).metrics["iou"]
        1.0
    """

    def __init__(
        self,
        threshold: float | None = None,
        ignore_empty: bool = True,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = ForegroundIoUMetric(threshold=threshold, ignore_empty=ignore_empty, reduction=reduction)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class SEGMeasure(IgniteMetricHandler):
    """Cell Tracking Challenge SEG measure over an evaluation; see :py:class:`~monai_unet2015.metrics.SEGMetric`.

    Args:
        average: ``"objects"`` (default, mean over all reference objects, the challenge's definition) or
            ``"images"`` (mean of the per-image SEG values).
        output_transform: extracts ``(y_pred, y)`` instance label maps from ``engine.state.output``.
        save_details: store per-image ``[sum of scores, number of reference objects]`` in
            ``engine.state.metric_details[name]``.

    Examples::

        >>> import torch
        >>> from ignite.engine import Engine
        >>> ref = torch.tensor([[[[1, 1, 1, 1, 0, 2, 2]]]])
        >>> pred = torch.tensor([[[[5, 5, 5, 0, 0, 3, 0]]]])
        >>> engine = Engine(lambda engine, batch: batch)
        >>> SEGMeasure().attach(engine, "seg")
        >>> engine.run([(pred, ref)]).metrics["seg"]
        0.375
    """

    def __init__(
        self, average: str = "objects", output_transform: Callable = lambda x: x, save_details: bool = True
    ) -> None:
        metric_fn = SEGMetric(average=average)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)


class InstanceErrors(_SummaryHandler):
    """One object count over an evaluation: reference, predicted, missed, false, split or merged objects.

    See :py:func:`~monai_unet2015.metrics.instance_errors` for the definitions. ``handler.details`` (and, with
    ``save_details``, ``engine.state.metric_details[name + "_summary"]``) holds all six counts.

    Args:
        count: ``"reference"``, ``"predicted"``, ``"missed"``, ``"false"``, ``"split"`` or ``"merged"``.
        output_transform: extracts ``(y_pred, y)`` instance label maps from ``engine.state.output``.
        save_details: store the per-image counts in ``engine.state.metric_details[name]`` and all six totals
            in ``engine.state.metric_details[name + "_summary"]``.

    Examples::

        >>> import torch
        >>> from ignite.engine import Engine
        >>> ref = torch.tensor([[[[1, 1, 0, 2, 2, 0, 3, 3]]]])
        >>> pred = torch.tensor([[[[4, 4, 4, 4, 4, 0, 0, 9]]]])
        >>> engine = Engine(lambda engine, batch: batch)
        >>> handler = InstanceErrors("merged")
        >>> handler.attach(engine, "merged")
        >>> engine.run([(pred, ref)]).metrics["merged"], handler.details.predicted
        (2.0, 2)
    """

    def __init__(
        self, count: str = "missed", output_transform: Callable = lambda x: x, save_details: bool = True
    ) -> None:
        super().__init__(InstanceErrorMetric(count), output_transform, save_details)


class AdaptedRandError(IgniteMetricHandler):
    """Adapted Rand error of label maps over an evaluation (lower is better), e.g. EM neurons against the cells of
    the ground truth; see :py:class:`~monai_unet2015.metrics.AdaptedRandErrorMetric`.

    Args:
        normalization: ``"n2"`` (default) or ``"pairs"``.
        output_transform: extracts ``(y_pred, y)`` label maps from ``engine.state.output``.
        save_details: store the per-image pair counts ``[AB, A, B]`` in ``engine.state.metric_details[name]``.

    Examples::

        >>> import torch
        >>> from ignite.engine import Engine
        >>> gt = torch.tensor([[[[1, 1, 0, 2, 2]]]])
        >>> engine = Engine(lambda engine, batch: batch)
        >>> AdaptedRandError().attach(engine, "neuron_rand_error")
        >>> engine.run([(gt + 5, gt)]).metrics["neuron_rand_error"]
        0.0
    """

    def __init__(
        self, normalization: str = "n2", output_transform: Callable = lambda x: x, save_details: bool = True
    ) -> None:
        metric_fn = AdaptedRandErrorMetric(normalization)
        super().__init__(metric_fn=metric_fn, output_transform=output_transform, save_details=save_details)

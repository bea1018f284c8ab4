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

"""Ignite handlers of the ISBI 2012 leaderboard's V_rand and V_info (after border thinning).

Like the other threshold-sweep handlers (:py:mod:`monai_unet2015.handlers.metrics`), each wraps its
:py:mod:`monai_unet2015.metrics` class in MONAI's :py:class:`~monai.handlers.IgniteMetricHandler`:
the best score lands in ``engine.state.metrics[name]``; ``handler.details`` (and, with
``save_details``, ``engine.state.metric_details[name + "_summary"]``) holds the
:py:class:`~monai_unet2015.metrics.VScoreResult`: split and merge parts, best threshold and the sweep;
``engine.state.metric_details[name]`` the per-image statistics ``(B, T, 7)``. The scores are higher
for better segmentations (MONAI's default ``metric_cmp_fn`` and ``CheckpointSaver`` settings apply).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from monai_unet2015.handlers.metrics import _SummaryHandler
from monai_unet2015.metrics.sweep import DEFAULT_THRESHOLDS
from monai_unet2015.metrics.vscores import VInfoMetric, VRandMetric

__all__ = ["VRand", "VInfo"]


class _VScoreHandler(_SummaryHandler):
    """The constructor of :py:class:`VRand` and :py:class:`VInfo` (``_metric`` is the metric class)."""

    _metric: type = VRandMetric

    def __init__(
        self,
        thresholds: float | Sequence[float] = DEFAULT_THRESHOLDS,
        polarity: str = "membrane",
        connectivity: int = 1,
        thinning: bool = True,
        average: str = "pooled",
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        metric_fn = self._metric(
            thresholds=thresholds, polarity=polarity, connectivity=connectivity, thinning=thinning, average=average
        )
        super().__init__(metric_fn, output_transform, save_details)


class VRand(_VScoreHandler):
    """ISBI 2012 leaderboard V_rand over an evaluation (higher is better).

    See :py:class:`~monai_unet2015.metrics.VRandMetric` and :py:func:`~monai_unet2015.metrics.v_rand`.

    Args:
        thresholds: binarisation level(s) of the probability map in [0, 1]; default 0.1, ..., 0.9.
        polarity: ``"membrane"`` (1 = membrane, default) or ``"cell"`` (1 = cell), for prediction and label.
        connectivity: 1 (4-connected in 2D, 6 in 3D, default) up to the number of spatial dimensions.
        thinning: thin the predicted borders before scoring (default ``True``, the leaderboard's scores).
        average: ``"pooled"`` (default, counts added over all images) or ``"images"`` (mean of per-image scores).
        output_transform: extracts ``(y_pred, y)`` from ``engine.state.output``, e.g.
            ``monai.handlers.from_engine(["pred", "label"])``; ``y_pred`` one channel of probabilities.
        save_details: store per-image statistics and the result in ``engine.state.metric_details``.

    Examples::

        >>> import torch
        >>> from ignite.engine import Engine
        >>> y = torch.zeros(1, 1, 5, 7); y[..., 3] = 1
        >>> engine = Engine(lambda engine, batch: batch)
        >>> handler = VRand()
        >>> handler.attach(engine, "v_rand")
        >>> round(engine.run([(torch.zeros_like(y), y)]).metrics["v_rand"], 4), handler.details.merge
        (0.6667, 0.5)
    """

    _metric = VRandMetric


class VInfo(_VScoreHandler):
    """ISBI 2012 leaderboard V_info over an evaluation (higher is better).

    See :py:class:`~monai_unet2015.metrics.VInfoMetric` and :py:func:`~monai_unet2015.metrics.v_info`.

    Args:
        thresholds, polarity, connectivity, thinning, average, output_transform, save_details: as
            :py:class:`VRand`; ``average="images"`` averages the per-image scores, as Fiji's evaluation of a stack.

    Examples::

        >>> import torch
        >>> from ignite.engine import Engine
        >>> y = torch.zeros(1, 1, 5, 11); y[..., [3, 7]] = 1
        >>> engine = Engine(lambda engine, batch: batch)
        >>> VInfo().attach(engine, "v_info")
        >>> engine.run([(y, y)]).metrics["v_info"]
        1.0
    """

    _metric = VInfoMetric

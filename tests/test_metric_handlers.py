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

"""Ignite handlers of the ISBI 2012 / Cell Tracking Challenge metrics, in a plain ignite Engine and in
a MONAI SupervisedEvaluator: the recorded values equal the plain functions on all the data."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

import monai_unet2015.handlers.metrics as handlers_module
from monai_unet2015.handlers import ForegroundIoU, PixelError, RandError, SEGMeasure, WarpingError
from monai_unet2015.metrics import foreground_iou, pixel_error, rand_error, seg_measure, warping_error


def _data(n=4, size=40):
    """Membrane labels (1 = membrane) and smooth, noisy membrane probabilities."""
    labels, probs = [], []
    for s in range(n):
        rng = np.random.default_rng(s)
        cells = ndi.gaussian_filter(rng.standard_normal((size, size)), 2.5) > -0.3
        membrane = (~cells).astype(np.float32)
        prob = np.clip(ndi.gaussian_filter(membrane, 1.0) + 0.1 * rng.standard_normal(membrane.shape), 0, 1)
        labels.append(torch.as_tensor(membrane)[None])
        probs.append(torch.as_tensor(prob, dtype=torch.float32)[None])
    return probs, labels


def test_docstring_examples():
    result = doctest.testmod(handlers_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize(
    "handler_cls, func",
    [(PixelError, pixel_error), (RandError, rand_error), (WarpingError, warping_error)],
)
def test_threshold_sweep_handlers_in_ignite_engine(handler_cls, func):
    from ignite.engine import Engine

    probs, labels = _data()
    batches = [(torch.stack(probs[:2]), torch.stack(labels[:2])), (probs[2:], labels[2:])]  # tensor, then lists
    engine = Engine(lambda engine, batch: batch)
    thr = (0.3, 0.5, 0.7)
    handler = handler_cls(thresholds=thr)
    handler.attach(engine, "score")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. "can only record the first value"
        state = engine.run(batches)
    expected = func(torch.stack(probs), torch.stack(labels), thresholds=thr)
    assert state.metrics["score"] == pytest.approx(expected.error)
    summary = state.metric_details["score_summary"]
    assert summary["threshold"] == expected.threshold
    assert summary["errors"] == pytest.approx(expected.errors)
    assert handler.details.threshold == expected.threshold
    assert state.metric_details["score"].shape[:2] == (4, len(thr))  # per-image statistics
    if handler_cls is WarpingError:
        assert (summary["splits"], summary["mergers"]) == (expected.splits, expected.mergers)


def test_ctc_handlers_in_ignite_engine():
    from ignite.engine import Engine

    probs, labels = _data()
    instances = [torch.as_tensor(ndi.label(1 - y[0].numpy())[0])[None] for y in labels]
    predicted = [torch.as_tensor(ndi.label(p[0].numpy() < 0.5)[0])[None] for p in probs]
    engine = Engine(lambda engine, batch: batch)
    ForegroundIoU().attach(engine, "iou")
    SEGMeasure().attach(engine, "seg")
    state = engine.run([(predicted[:2], instances[:2]), (predicted[2:], instances[2:])])
    all_pred, all_ref = torch.stack(predicted), torch.stack(instances)
    assert state.metrics["seg"] == pytest.approx(seg_measure(all_pred, all_ref).seg)
    assert state.metrics["iou"] == pytest.approx(foreground_iou(all_pred, all_ref).mean().item())
    assert state.metric_details["iou"].shape == (4, 1)


def test_handlers_in_supervised_evaluator():
    from monai.data import DataLoader
    from monai.engines import SupervisedEvaluator
    from monai.handlers import from_engine

    probs, labels = _data(n=3)
    data = [{"image": p, "label": y} for p, y in zip(probs, labels)]
    loader = DataLoader(data, batch_size=2, num_workers=0)
    warp = WarpingError(thresholds=(0.4, 0.5, 0.6), output_transform=from_engine(["pred", "label"]))
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=loader,
        network=torch.nn.Identity(),  # the "network" returns the probability map it is given
        key_val_metric={"val_warping_error": warp},
        additional_metrics={"val_rand_error": RandError(output_transform=from_engine(["pred", "label"]))},
    )
    evaluator.run()
    expected = warping_error(torch.stack(probs), torch.stack(labels), thresholds=(0.4, 0.5, 0.6))
    assert evaluator.state.metrics["val_warping_error"] == pytest.approx(expected.error)
    assert evaluator.state.metrics["val_rand_error"] == pytest.approx(
        rand_error(torch.stack(probs), torch.stack(labels)).error
    )
    assert warp.details.threshold == expected.threshold


def test_handler_without_save_details_and_bad_arguments():
    from ignite.engine import Engine

    probs, labels = _data(n=1)
    engine = Engine(lambda engine, batch: batch)
    handler = PixelError(save_details=False)
    handler.attach(engine, "pe")
    state = engine.run([(probs, labels)])
    assert not hasattr(state, "metric_details") or "pe_summary" not in state.metric_details
    assert handler.details.error == pytest.approx(state.metrics["pe"])
    with pytest.raises(ValueError, match="polarity"):
        WarpingError(polarity="boundary")
    with pytest.raises(ValueError, match="average"):
        SEGMeasure(average="cells")

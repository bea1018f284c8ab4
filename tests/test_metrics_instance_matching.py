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

"""Missed / false / split / merged counts against hand-made cases, a slow per-object reference and real labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Engine

from monai_unet2015.handlers import InstanceErrors
from monai_unet2015.metrics import InstanceErrorMetric, instance_errors

SEG = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dic-hela" / "01_GT" / "SEG"
ST = SEG.parent.parent / "01_ST" / "SEG"


def slow_errors(pred: np.ndarray, ref: np.ndarray) -> tuple[int, ...]:
    """The definitions, one object pair at a time with boolean masks."""
    r_ids = [int(v) for v in np.unique(ref) if v > 0]
    s_ids = [int(v) for v in np.unique(pred) if v > 0]
    masks_r = {a: ref == a for a in r_ids}
    masks_s = {b: pred == b for b in s_ids}
    inter = {(a, b): int(np.sum(masks_r[a] & masks_s[b])) for a in r_ids for b in s_ids}
    covers = {(a, b) for (a, b), n in inter.items() if 2 * n > masks_r[a].sum()}
    lies_in = {(a, b) for (a, b), n in inter.items() if 2 * n > masks_s[b].sum()}
    merged = split = missed = false = 0
    for a in r_ids:
        cov = [b for b in s_ids if (a, b) in covers]
        if any(sum((x, b) in covers for x in r_ids) >= 2 for b in cov):
            merged += 1
        pieces = sum((a, b) in lies_in for b in s_ids)
        split += pieces >= 2
        missed += not cov and pieces < 2
    for b in s_ids:
        false += not any((a, b) in covers or (a, b) in lies_in for a in r_ids)
    return len(r_ids), len(s_ids), missed, false, split, merged


def disc(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.hypot(yy - centre[0], xx - centre[1]) <= radius


def test_hand_made_cases():
    ref = np.zeros((40, 80), np.int32)
    ref[disc(ref.shape, (20, 15), 9)] = 1
    ref[disc(ref.shape, (20, 33), 9)] = 2  # touches 1
    ref[disc(ref.shape, (20, 60), 9)] = 3
    pred = np.zeros_like(ref)
    pred[(ref == 1) | (ref == 2)] = 4  # 1 and 2 come out as one object
    pred[(ref == 3) & (np.arange(80)[None] < 60)] = 5  # 3 is cut in two halves
    pred[(ref == 3) & (np.arange(80)[None] >= 60)] = 6
    pred[2:5, 2:5] = 9  # a false object on background
    r = instance_errors(pred, ref)
    assert r == (3, 4, 0, 1, 1, 2)
    assert r.merged == 2 and r.split == 1 and r.false == 1 and r.missed == 0
    # perfect prediction with other ids
    assert instance_errors(np.where(ref > 0, ref + 10, 0), ref) == (3, 3, 0, 0, 0, 0)
    # nothing predicted: all missed
    assert instance_errors(np.zeros_like(ref), ref) == (3, 0, 3, 0, 0, 0)
    # a predicted object that straddles two cells without a majority in either (and covers none): false
    ref2 = np.array([[1, 1, 1, 1, 2, 2, 2, 2]])
    pred2 = np.array([[0, 0, 3, 3, 3, 3, 0, 0]])
    assert instance_errors(pred2, ref2) == (2, 1, 2, 1, 0, 0)


@pytest.mark.parametrize("seed", range(6))
def test_matches_slow_reference_random(seed):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 5, (12, 14)).repeat(2, 0).repeat(2, 1)
    pred = rng.integers(0, 6, (8, 7)).repeat(3, 0).repeat(4, 1)
    pred[rng.random(pred.shape) < 0.1] = 0
    assert tuple(instance_errors(pred, ref)) == slow_errors(pred, ref)


def test_matches_slow_reference_3d_and_batch():
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 4, (2, 1, 4, 6, 6)).repeat(2, 2)
    pred = rng.integers(0, 4, (2, 1, 8, 3, 3)).repeat(2, 3).repeat(2, 4)
    expect = np.sum([slow_errors(pred[b, 0], ref[b, 0]) for b in range(2)], axis=0)
    assert tuple(instance_errors(torch.as_tensor(pred), torch.as_tensor(ref))) == tuple(expect)


@pytest.mark.skipif(not SEG.is_dir(), reason="needs ../shared/data")
def test_real_silver_truth_against_gold_truth():
    import tifffile

    gt = tifffile.imread(SEG / "man_seg021.tif").astype(np.int64)
    st = tifffile.imread(ST / "man_seg021.tif").astype(np.int64)
    r = instance_errors(st, gt)
    assert tuple(r) == slow_errors(st, gt)
    assert r.reference == np.unique(gt[gt > 0]).size and r.predicted == np.unique(st[st > 0]).size
    assert instance_errors(gt, gt) == (r.reference, r.reference, 0, 0, 0, 0)


def test_metric_and_handler_sum_over_an_evaluation():
    ref = torch.tensor([[[[1, 1, 0, 2, 2, 0, 3, 3]]]])
    pred = torch.tensor([[[[4, 4, 4, 4, 4, 0, 0, 9]]]])
    metric = InstanceErrorMetric("missed")
    metric(y_pred=pred, y=ref)
    metric(y_pred=pred, y=ref)
    assert float(metric.aggregate()) == 2.0
    assert metric.aggregate_details() == (6, 4, 2, 0, 0, 4)
    engine = Engine(lambda engine, batch: batch)
    for count in ("reference", "predicted", "split"):
        InstanceErrors(count).attach(engine, count)
    m = engine.run([(pred, ref), (pred, ref)]).metrics
    assert (m["reference"], m["predicted"], m["split"]) == (6.0, 4.0, 0.0)
    assert engine.state.metric_details["reference_summary"]["merged"] == 4


def test_bad_input():
    with pytest.raises(ValueError, match="missed"):
        InstanceErrorMetric("misses")
    with pytest.raises(ValueError, match="same shape"):
        instance_errors(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError):
        instance_errors(np.full((4, 4), 0.5), np.zeros((4, 4)))

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

"""V_rand and V_info (ISBI 2012 leaderboard): a slow reference written from the definitions (explicit pixel
pair counts, entropy sums over segment ids), hand-computed splits and mergers, the border thinning against a
sequential first-in-first-out flooding, real ISBI 2012 labels, pooling, the MONAI metrics, the ignite
handlers and bad input."""

from __future__ import annotations

import doctest
import math
from collections import deque

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

import monai_unet2015.handlers.vscores as handlers_module
import monai_unet2015.metrics.vscores as vscores_module
from monai_unet2015.handlers import VInfo, VRand
from monai_unet2015.metrics import (
    VInfoMetric,
    VRandMetric,
    rand_error,
    thin_borders,
    v_info,
    v_rand,
    v_scores,
)
from metrics_data import (  # noqa: I001
    needs_isbi,
    isbi_membrane as _isbi_membrane,
    noisy_probability as _noisy_probability,
    random_blobs as _random_blobs,
)

FOUR = ndi.generate_binary_structure(2, 1)


# --------------------------------------------------------------------------------------------------
# References written directly from the definitions (slow: Python loops, small arrays only)
# --------------------------------------------------------------------------------------------------


def _reference(labels_true, labels_pred):
    """(V_rand, split, merge, V_info, split, merge) by explicit pair counting and entropy sums."""
    t_all = np.asarray(labels_true).ravel().tolist()
    s_all = np.asarray(labels_pred).ravel().tolist()
    T, S = [], []
    for k, (t, s) in enumerate(zip(t_all, s_all)):
        if t > 0:  # foreground-restricted: ground-truth background ignored
            T.append(t)
            S.append(s if s > 0 else ("singleton", k))  # predicted 0: a segment of its own
    n = len(T)
    if n == 0:
        return (math.nan,) * 6
    same_both = same_t = same_s = 0
    for a in range(n):  # ordered pairs of pixels, a pixel with itself included (N^2 normalisation)
        for b in range(n):
            st, ss = T[a] == T[b], S[a] == S[b]
            same_t += st
            same_s += ss
            same_both += st and ss
    rand = (2 * same_both / (same_s + same_t), same_both / same_t, same_both / same_s)
    ids_s, ids_t = list(dict.fromkeys(S)), list(dict.fromkeys(T))
    p = {}
    for i in ids_s:
        for j in ids_t:
            p[i, j] = sum(1 for a in range(n) if S[a] == i and T[a] == j) / n
    ps = {i: sum(p[i, j] for j in ids_t) for i in ids_s}
    pt = {j: sum(p[i, j] for i in ids_s) for j in ids_t}
    h_s = -sum(v * math.log(v) for v in ps.values() if v > 0)
    h_t = -sum(v * math.log(v) for v in pt.values() if v > 0)
    mi = sum(v * math.log(v / (ps[i] * pt[j])) for (i, j), v in p.items() if v > 0)
    split = mi / h_s if h_s > 1e-12 else 1.0
    merge = mi / h_t if h_t > 1e-12 else 1.0
    score = 2 * mi / (h_s + h_t) if h_s + h_t > 1e-12 else 1.0
    return rand + (score, split, merge)


def _sequential_flood(cells):
    """Watershed flooding of the non-cell pixels, one pixel at a time in first-in-first-out order.

    The queue starts with the non-cell pixels next to a cell, in raster order; a popped pixel takes the
    label of its already-flooded neighbours, or becomes a dam (0) when they carry two labels or none.
    """
    cells = np.asarray(cells, dtype=bool)
    lab = ndi.label(cells, FOUR)[0].astype(np.int64)
    if not cells.any():
        return np.ones(cells.shape, dtype=np.int64)
    h, w = cells.shape
    flooded = cells.copy()
    queued = cells.copy()

    def neighbours(r, c):
        for rr, cc in ((r - 1, c), (r, c - 1), (r, c + 1), (r + 1, c)):
            if 0 <= rr < h and 0 <= cc < w:
                yield rr, cc

    queue = deque()
    for r in range(h):
        for c in range(w):
            if not cells[r, c] and any(cells[q] for q in neighbours(r, c)):
                queue.append((r, c))
                queued[r, c] = True
    while queue:
        r, c = queue.popleft()
        seen = {int(lab[q]) for q in neighbours(r, c) if flooded[q] and lab[q] > 0}
        lab[r, c] = seen.pop() if len(seen) == 1 else 0
        flooded[r, c] = True
        for q in neighbours(r, c):
            if not queued[q]:
                queued[q] = True
                queue.append(q)
    return lab


def _same_partition(a, b):
    """The same dams and a one-to-one correspondence between the segments."""
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(set(pairs[0])) == len(set(pairs[1])) == pairs.shape[1]


# --------------------------------------------------------------------------------------------------
# doctests
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [vscores_module, handlers_module])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# --------------------------------------------------------------------------------------------------
# Label maps: the definitions
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_v_scores_match_reference(seed):
    rng = np.random.default_rng(seed)
    shape = (7, 9)
    gt = ndi.label(_random_blobs(shape, seed, sigma=1.2, level=-0.3), FOUR)[0]
    pred = rng.integers(0, 4, size=shape)  # predicted 0 -> singletons
    if seed % 2:
        pred = ndi.label(_random_blobs(shape, seed + 100, sigma=1.0, level=-0.5), FOUR)[0]
    expected = _reference(gt, pred)
    assert np.allclose(v_scores(gt, pred), expected, rtol=1e-10, atol=1e-12)
    assert np.allclose(v_scores(torch.as_tensor(gt), torch.as_tensor(pred)), expected, rtol=1e-10, atol=1e-12)


def test_v_scores_perfect_and_relabelled():
    gt = np.array([[1, 1, 0, 2, 2], [1, 1, 0, 2, 2], [0, 0, 0, 0, 0], [3, 3, 0, 4, 4]])
    assert v_scores(gt, gt) == (1.0,) * 6
    perm = np.where(gt > 0, 10 - gt, 7)  # other ids, and the ignored background labelled too
    assert v_scores(gt, perm) == (1.0,) * 6
    one = np.ones((3, 3), dtype=int)  # one object predicted perfectly: zero entropies, score 1
    assert v_scores(one, one) == (1.0,) * 6


def test_v_scores_split_into_halves():
    m = 6
    gt = np.repeat([1, 2], 2 * m)[None]  # two objects of 2m pixels
    pred = np.repeat([1, 3, 2], [m, m, 2 * m])[None]  # object 1 split into two halves
    s = v_scores(gt, pred)
    # sum p^2 = m^2 + m^2 + (2m)^2 = 6 m^2, sum t^2 = 8 m^2, sum s^2 = 6 m^2
    assert (s.v_rand_split, s.v_rand_merge) == pytest.approx((6 / 8, 1.0))
    assert s.v_rand == pytest.approx(2 * 6 / (6 + 8))
    # H(T) = log 2, H(S) = 1.5 log 2, I = H(T) (S refines T)
    assert (s.v_info_split, s.v_info_merge) == pytest.approx((1 / 1.5, 1.0))
    assert s.v_info == pytest.approx(2 / 2.5)
    # a single object split in two: I = 0 = H(T), so V_info = 0 while nothing was merged
    s1 = v_scores(np.ones((1, 2 * m), dtype=int), pred[:, : 2 * m])
    assert (s1.v_rand, s1.v_rand_split, s1.v_rand_merge) == pytest.approx((2 / 3, 0.5, 1.0))
    assert (s1.v_info, s1.v_info_split, s1.v_info_merge) == pytest.approx((0.0, 0.0, 1.0))


def test_v_scores_merge_of_equal_objects():
    gt = np.repeat([1, 2], 5)[None]
    s = v_scores(gt, np.ones_like(gt))  # the two equal objects merged
    assert (s.v_rand, s.v_rand_split, s.v_rand_merge) == pytest.approx((2 / 3, 1.0, 0.5))
    assert (s.v_info, s.v_info_split, s.v_info_merge) == pytest.approx((0.0, 1.0, 0.0))  # H(S) = 0 = I
    gt3 = np.repeat([1, 2, 3], 4)[None]
    s3 = v_scores(gt3, np.repeat([1, 1, 2], 4)[None])  # two of three equal objects merged
    assert (s3.v_rand, s3.v_rand_split, s3.v_rand_merge) == pytest.approx((6 / 8, 1.0, 3 / 5))
    h_t, h_s = math.log(3), math.log(3) - 2 / 3 * math.log(2)
    assert (s3.v_info, s3.v_info_split, s3.v_info_merge) == pytest.approx((2 * h_s / (h_s + h_t), 1.0, h_s / h_t))


def test_v_scores_singletons_and_empty_foreground():
    s = v_scores(np.ones((1, 4), dtype=int), np.array([[1, 1, 0, 0]]))  # two unassigned pixels
    assert (s.v_rand_split, s.v_rand_merge) == pytest.approx((6 / 16, 1.0))  # 2^2 + 1 + 1 over 4^2
    h_s = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert (s.v_info_split, s.v_info_merge) == pytest.approx((0.0, 1.0)) and h_s > 0
    assert np.all(np.isnan(v_scores(np.zeros((3, 3), dtype=int), np.ones((3, 3), dtype=int))))


# --------------------------------------------------------------------------------------------------
# Border thinning
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("vertical", [True, False])
def test_thin_borders_straight_membrane(width, vertical):
    cells = np.ones((6, 8 + width), dtype=bool)
    cells[:, 4 : 4 + width] = False
    if not vertical:
        cells = cells.T.copy()
    lab = thin_borders(cells)
    assert np.count_nonzero(lab == 0) == cells.shape[1 - int(vertical)]  # one line of dams
    dam = np.flatnonzero((lab == 0).any(axis=0 if vertical else 1))
    assert dam.tolist() == [4 + width // 2]  # in the middle (the later pixel for even widths)
    assert np.unique(lab[cells]).size == 2 and set(np.unique(lab).tolist()) == {0, 1, 2}
    assert _same_partition(lab, _sequential_flood(cells))


def test_thin_borders_keeps_cells_and_thins_dams():
    for seed in range(4):
        cells = _random_blobs((40, 50), seed, sigma=2.0, level=0.2)
        lab = thin_borders(cells)
        comp = ndi.label(cells, FOUR)[0]
        assert np.array_equal(lab[cells], comp[cells])  # every cell keeps its component's label
        assert np.all(cells[lab == 0] == 0)  # dams only on membrane pixels
        # every segment is the cell component grown over membrane pixels: still one connected piece
        for k in range(1, comp.max() + 1):
            assert ndi.label(lab == k, FOUR)[1] == 1
        # dams separate segments: no two different segments are 4-neighbours
        for a, b in ((lab[:, 1:], lab[:, :-1]), (lab[1:], lab[:-1])):
            assert not np.any((a > 0) & (b > 0) & (a != b))


def test_thin_borders_special_cases():
    assert np.array_equal(thin_borders(np.zeros((4, 5), dtype=bool)), np.ones((4, 5)))  # no cell: one segment
    cells = np.array([[1, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 1]], dtype=bool)
    assert np.array_equal(thin_borders(cells)[cells], ndi.label(cells, FOUR)[0][cells])
    assert np.array_equal(thin_borders(np.ones((3, 3))), np.ones((3, 3)))  # all cell, float 0/1 accepted
    vol = np.ones((3, 4, 9), dtype=bool)
    vol[:, :, 4:7] = False  # a 3-voxel slab between two cells, 3D
    lab = thin_borders(torch.as_tensor(vol))
    assert np.all(lab[:, :, 5] == 0) and np.all(lab[:, :, :5] == 1) and np.all(lab[:, :, 6:] == 2)


def test_thin_borders_against_sequential_flooding():
    """Raster order within a layer instead of queue order: dams move by a pixel here and there, scores barely."""
    for seed in range(3):
        cells = _random_blobs((48, 48), seed, sigma=1.5, level=0.3)
        gt = ndi.label(_random_blobs((48, 48), seed, sigma=1.5, level=0.25), FOUR)[0]
        ours, seq = thin_borders(cells), _sequential_flood(cells)
        assert abs(np.count_nonzero(ours == 0) - np.count_nonzero(seq == 0)) <= 0.05 * np.count_nonzero(seq == 0) + 2
        assert np.allclose(v_scores(gt, ours), v_scores(gt, seq), atol=1e-2)


def test_thinning_forgives_thick_borders():
    """The point of the thinning: predicted membranes three pixels wide score as the one-pixel truth."""
    membrane = np.zeros((45, 56))
    membrane[::11, :] = 1
    membrane[:, ::11] = 1  # a grid of 10 x 10 cells behind one-pixel membranes
    thick = ndi.binary_dilation(membrane, FOUR).astype(float)
    assert v_rand(thick, membrane).score == 1.0 and v_info(thick, membrane).score == 1.0
    plain = v_rand(thick, membrane, thinning=False)
    assert plain.score < 0.9 and plain.merge == 1.0  # without thinning the border pixels are singletons
    assert v_info(thick, membrane, thinning=False).score < 0.9


# --------------------------------------------------------------------------------------------------
# Probability maps: threshold sweep, polarity, pooling
# --------------------------------------------------------------------------------------------------


def _membranes(n=3, size=36):
    ys, ps = [], []
    for s in range(n):
        cells = _random_blobs((size, size), s, sigma=2.5, level=-0.3)
        y = (~cells).astype(float)
        rng = np.random.default_rng(s)
        ys.append(y)
        ps.append(np.clip(ndi.gaussian_filter(y, 1.0) + 0.15 * rng.standard_normal(y.shape), 0, 1))
    return np.stack(ps)[:, None], np.stack(ys)[:, None]


def test_sweep_matches_label_maps_and_pooling():
    p, y = _membranes()
    thr = (0.3, 0.5, 0.7)
    for func, fields in ((v_rand, (0, 1, 2)), (v_info, (3, 4, 5))):
        pooled = func(p, y, thresholds=thr)
        k = thr.index(pooled.threshold)
        assert pooled.score == np.nanmax(pooled.scores) == pooled.scores[k]
        # pooled = one label map holding every image's thinned segments under their own ids
        gts, preds, offset = [], [], 0
        for b in range(p.shape[0]):
            gts.append(ndi.label(y[b, 0] == 0, FOUR)[0] + offset * (y[b, 0] == 0))
            lab = thin_borders(p[b, 0] <= pooled.threshold)
            preds.append(np.where(lab > 0, lab + offset, 0))
            offset += 10_000
        expected = v_scores(np.concatenate(gts, axis=1), np.concatenate(preds, axis=1))
        assert (pooled.score, pooled.split, pooled.merge) == pytest.approx([expected[f] for f in fields])
        per_image = [func(p[b, 0], y[b, 0], thresholds=thr) for b in range(p.shape[0])]
        assert func(p, y, thresholds=thr, average="images").scores == pytest.approx(
            np.mean([r.scores for r in per_image], axis=0)
        )


def test_sweep_polarity_threshold_and_rand_error():
    p, y = _membranes(n=2)
    p = np.round(p * 64) / 64  # multiples of 1/64 and thresholds between them: no pixel exactly at a level
    thr = (0.2421875, 0.4921875, 0.7421875)
    r = v_rand(p, y, thresholds=thr)
    # polarity "cell" on 1 - p at the levels 1 - t: the same binarisations, the same scores
    rc = v_rand(1 - p, 1 - y, thresholds=[1 - t for t in thr], polarity="cell")
    assert np.array_equal(rc.scores, r.scores) and rc.score == r.score
    ic, i = v_info(1 - p, 1 - y, thresholds=[1 - t for t in thr], polarity="cell"), v_info(p, y, thresholds=thr)
    assert np.array_equal(ic.scores, i.scores)
    assert v_rand(torch.as_tensor(p), torch.as_tensor(y), thresholds=thr).scores == pytest.approx(r.scores)
    # without thinning V_rand is one minus the adapted Rand error of the 2012 scoring
    plain = v_rand(p, y, thresholds=thr, thinning=False)
    assert plain.scores == pytest.approx(1 - rand_error(p, y, thresholds=thr).errors)
    assert r.scores[0] > plain.scores[0] + 0.05  # thick predicted borders at a low level: thinning forgives them
    one = v_info(p[0, 0], y[0, 0], thresholds=0.5)
    assert one.threshold == 0.5 and one.scores.shape == (1,)


def test_sweep_3d():
    y = np.zeros((1, 1, 4, 9, 9))
    y[..., 4] = 1  # a membrane plane between two cells
    assert v_rand(y, y).score == 1.0 and v_info(y, y).score == 1.0
    merged = v_rand(np.zeros_like(y), y)
    assert (merged.split, merged.merge) == pytest.approx((1.0, 0.5))


# --------------------------------------------------------------------------------------------------
# Real ISBI 2012 training labels
# --------------------------------------------------------------------------------------------------


@needs_isbi
@pytest.mark.parametrize("func", [v_rand, v_info])
def test_isbi_labels(func):
    membrane = _isbi_membrane(0)
    assert func(membrane, membrane).score == 1.0
    assert func(1 - membrane, 1 - membrane, polarity="cell").score == 1.0  # the PNG's own polarity (label / 255)
    noisy = func(_noisy_probability(membrane, seed=0), membrane)
    assert 0.5 < noisy.score < 1.0 and noisy.threshold in noisy.thresholds
    assert 0 < noisy.split <= 1 and 0 < noisy.merge <= 1
    missed = func(np.zeros_like(membrane), membrane)  # nothing predicted: everything one segment
    assert missed.split == 1.0 and missed.score < 0.5


@needs_isbi
def test_isbi_crop_against_sequential_flooding():
    membrane = _isbi_membrane(1)[:96, :96]
    prob = _noisy_probability(_isbi_membrane(1), seed=1)[:96, :96]
    gt = ndi.label(membrane == 0, FOUR)[0]
    for th in (0.3, 0.5, 0.7):
        cells = prob <= th
        assert np.allclose(v_scores(gt, thin_borders(cells)), v_scores(gt, _sequential_flood(cells)), atol=2e-3)


# --------------------------------------------------------------------------------------------------
# MONAI metrics and ignite handlers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, func", [(VRandMetric, v_rand), (VInfoMetric, v_info)])
@pytest.mark.parametrize("average", ["pooled", "images"])
def test_metric_classes(cls, func, average):
    p, y = _membranes(n=4)
    thr = (0.3, 0.5, 0.7)
    metric = cls(thresholds=thr, average=average)
    metric(y_pred=torch.as_tensor(p[:2]), y=torch.as_tensor(y[:2]))
    metric(y_pred=[torch.as_tensor(x) for x in p[2:]], y=[torch.as_tensor(x) for x in y[2:]])  # decollated
    expected = func(p, y, thresholds=thr, average=average)
    details = metric.aggregate_details()
    assert float(metric.aggregate()) == pytest.approx(expected.score)
    assert (details.split, details.merge, details.threshold) == pytest.approx(
        (expected.split, expected.merge, expected.threshold)
    )
    assert metric.get_buffer().shape == (4, 3, 7)
    metric.reset()
    with pytest.raises(ValueError, match="nothing to aggregate"):
        metric.aggregate()


@pytest.mark.parametrize("handler_cls, func", [(VRand, v_rand), (VInfo, v_info)])
def test_handlers_in_ignite_engine(handler_cls, func):
    from ignite.engine import Engine

    p, y = _membranes(n=3)
    pt, yt = torch.as_tensor(p, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    engine = Engine(lambda engine, batch: batch)
    handler = handler_cls(thresholds=(0.4, 0.6))
    handler.attach(engine, "score")
    state = engine.run([(pt[:2], yt[:2]), (list(pt[2:]), list(yt[2:]))])
    expected = func(p, y, thresholds=(0.4, 0.6))
    assert state.metrics["score"] == pytest.approx(expected.score)
    summary = state.metric_details["score_summary"]
    assert (summary["split"], summary["merge"], summary["threshold"]) == pytest.approx(
        (expected.split, expected.merge, expected.threshold)
    )
    assert handler.details.score == pytest.approx(expected.score)
    assert state.metric_details["score"].shape == (3, 2, 7)


def test_handlers_in_supervised_evaluator():
    from monai.data import DataLoader
    from monai.engines import SupervisedEvaluator
    from monai.handlers import from_engine

    p, y = _membranes(n=3)
    data = [{"image": torch.as_tensor(a, dtype=torch.float32), "label": torch.as_tensor(b)} for a, b in zip(p, y)]
    pair = from_engine(["pred", "label"])
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(data, batch_size=2, num_workers=0),
        network=torch.nn.Identity(),  # the "network" returns the probability map it is given
        key_val_metric={"val_v_rand": VRand(output_transform=pair)},
        additional_metrics={"val_v_info": VInfo(output_transform=pair, average="images")},
    )
    evaluator.run()
    assert evaluator.state.metrics["val_v_rand"] == pytest.approx(v_rand(p, y).score, rel=1e-6)
    assert evaluator.state.metrics["val_v_info"] == pytest.approx(v_info(p, y, average="images").score, rel=1e-6)
    assert evaluator.state.best_metric == pytest.approx(evaluator.state.metrics["val_v_rand"])


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


def test_bad_input():
    y = np.zeros((6, 6))
    y[:, 3] = 1
    with pytest.raises(ValueError, match="v_rand: polarity must be one of"):
        v_rand(y, y, polarity="boundary")
    with pytest.raises(ValueError, match="v_info: average must be one of"):
        v_info(y, y, average="slices")
    with pytest.raises(TypeError, match="thinning must be True or False"):
        v_rand(y, y, thinning="yes")
    with pytest.raises(ValueError, match="connectivity must be an integer in \\[1, 2\\]"):
        v_info(y, y, connectivity=3)
    with pytest.raises(ValueError, match="thresholds"):
        v_rand(y, y, thresholds=1.5)
    with pytest.raises(ValueError, match="same shape"):
        v_rand(y, y[:5])
    with pytest.raises(ValueError, match="binary"):
        v_rand(y, 255 * y)
    with pytest.raises(ValueError, match="probability map"):
        v_info(5 * y - 2, y)
    with pytest.raises(ValueError, match="same shape"):
        v_scores(np.ones((2, 2), dtype=int), np.ones((2, 3), dtype=int))
    with pytest.raises(ValueError, match="non-negative"):
        v_scores(-np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="thin_borders: cells must be binary"):
        thin_borders(np.array([[0, 2]]))
    with pytest.raises(ValueError, match="VRandMetric: average"):
        VRandMetric(average="mean")
    with pytest.raises(ValueError, match="VInfoMetric: connectivity"):
        VInfoMetric(connectivity=0)
    with pytest.raises(ValueError, match="polarity"):
        VInfo(polarity="boundary")

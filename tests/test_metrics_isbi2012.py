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

"""ISBI 2012 pixel, Rand and warping errors: hand-built cases with known answers, real ISBI 2012 training
labels, batch pooling, the MONAI metric classes and bad input. The building blocks have their own tests:
``test_metrics_rand.py`` (adapted Rand error) and ``test_metrics_topology.py`` (simple points, warping,
topological errors)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

import monai_unet2015.metrics.isbi2012 as isbi_module
import monai_unet2015.metrics.sweep as sweep_module
from monai_unet2015.metrics import (
    DEFAULT_THRESHOLDS,
    PixelErrorMetric,
    RandErrorMetric,
    WarpingErrorMetric,
    pixel_error,
    rand_error,
    warping_error,
)
from metrics_data import (  # noqa: I001
    needs_isbi,
    isbi_membrane as _isbi_membrane,
    noisy_probability as _noisy_probability,
    random_blobs as _random_blobs,
)


# --------------------------------------------------------------------------------------------------
# doctests of the modules (their Examples blocks must run)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [isbi_module, sweep_module])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# --------------------------------------------------------------------------------------------------
# Hand-built cases with known answers (polarity "membrane": y == 1 on membranes)
# --------------------------------------------------------------------------------------------------


def _framed_cell(h=12, w=12):
    y = np.ones((h, w))
    y[1:-1, 1:-1] = 0  # one cell inside a membrane frame
    return y


def test_split_cell():
    y = _framed_cell()  # one 10 x 10 cell
    pred = y.copy()
    pred[1:11, 6] = 1  # a membrane line cuts it in two (50 + 40 pixels, 10 membrane pixels)
    w = warping_error(pred, y, thresholds=0.5)
    assert w.error == pytest.approx(1 / 144)  # only the last pixel of the cut cannot be warped away
    assert (w.splits, w.mergers, w.object_additions, w.object_deletions) == (1, 0, 0, 0)
    assert (w.hole_additions, w.hole_deletions) == (0, 0)
    assert pixel_error(pred, y, thresholds=0.5).error == pytest.approx(10 / 144)
    # n2: A = 100^2, B = 50^2 + 40^2 + 10 singletons, AB = B
    a, b = 100.0**2, 50.0**2 + 40.0**2 + 10
    assert rand_error(pred, y, thresholds=0.5).error == pytest.approx(1 - 2 * b / (a + b))
    a, b = 100.0 * 99, 50.0 * 49 + 40.0 * 39
    assert rand_error(pred, y, thresholds=0.5, normalization="pairs").error == pytest.approx(1 - 2 * b / (a + b))


def test_merged_pair():
    y = _framed_cell(12, 13)
    y[1:11, 6] = 1  # two 10 x 5 cells separated by a membrane column
    pred = _framed_cell(12, 13)  # the separating membrane is missed
    w = warping_error(pred, y, thresholds=0.5)
    # no pixel of the separator is simple: all ten stay, one merger
    assert w.error == pytest.approx(10 / 156)
    assert (w.splits, w.mergers, w.object_additions, w.object_deletions) == (0, 1, 0, 0)
    assert rand_error(pred, y, thresholds=0.5).error == pytest.approx(1 / 3)  # A = 2 * 50^2, B = 100^2, AB = A


def test_shifted_and_thickened_borders_are_forgiven():
    y = np.ones((20, 20))
    y[4:12, 5:13] = 0  # one 8 x 8 cell
    thinner = ndi.binary_erosion(y, border_value=1)
    for pred in (np.roll(y, (1, 2), axis=(0, 1)), ndi.binary_dilation(y).astype(float), thinner):
        assert warping_error(pred, y, thresholds=0.5).error == 0.0
        assert pixel_error(pred, y, thresholds=0.5).error > 0.0
    # two cells: the one-pixel membrane between them moves by one pixel
    y2 = _framed_cell(12, 13)
    y2[1:11, 6] = 1
    shifted = _framed_cell(12, 13)
    shifted[1:11, 7] = 1
    assert warping_error(shifted, y2, thresholds=0.5).error == 0.0
    assert pixel_error(shifted, y2, thresholds=0.5).error == pytest.approx(20 / 156)
    # moved by two pixels, the column between the old and the new membrane agrees, and flipping only
    # disagreeing pixels (the challenge's greedy warping) cannot carry a one-pixel membrane across it
    shifted2 = _framed_cell(12, 13)
    shifted2[1:11, 8] = 1
    w = warping_error(shifted2, y2, thresholds=0.5)
    assert w.error > 0 and (w.splits, w.mergers) == (1, 1)


def test_hole_is_not_forgiven():
    y = _framed_cell()
    for size in (1, 2):
        pred = y.copy()
        pred[5 : 5 + size, 5 : 5 + size] = 1  # a membrane island inside the cell
        w = warping_error(pred, y, thresholds=0.5)
        assert w.error == pytest.approx(size * size / 144)
        assert (w.hole_additions, w.splits, w.mergers) == (1, 0, 0)


def test_object_deletion_and_addition():
    y = np.ones((15, 15))
    y[2:5, 2:5] = 0  # a 3 x 3 cell
    pred = np.ones((15, 15))  # missed completely: the warping shrinks it to one pixel
    w = warping_error(pred, y, thresholds=0.5)
    assert w.error == pytest.approx(1 / 225) and w.object_deletions == 1
    pred2 = y.copy()
    pred2[9:11, 9:11] = 0  # a spurious 2 x 2 cell cannot grow out of nothing
    w2 = warping_error(pred2, y, thresholds=0.5)
    assert w2.error == pytest.approx(4 / 225) and w2.object_additions == 1


def test_pixel_error_modes_and_best_threshold():
    y = np.zeros((4, 5))
    y[:, 0] = 1
    prob = 0.8 * y
    prob[0, 1], prob[1, 1] = 0.6, 0.45
    r = pixel_error(prob, y, thresholds=(0.4, 0.5, 0.7))
    assert r.errors.tolist() == pytest.approx([2 / 20, 1 / 20, 0.0])
    assert (r.error, r.threshold) == (0.0, 0.7)
    # F-score of the cell pixels at 0.5: 16 true cells, 15 predicted, 15 correct
    f = pixel_error(prob, y, thresholds=0.5, mode="fscore")
    assert f.error == pytest.approx(1 - 2 * 15 / (15 + 16))


def test_polarity_cell_equals_inverted_membrane():
    rng = np.random.default_rng(5)
    y = (_random_blobs((40, 40), 5) > 0).astype(float)
    prob = np.clip(ndi.gaussian_filter(y, 1) + 0.2 * rng.standard_normal(y.shape), 0, 1)
    thr = (0.3, 0.5, 0.7)
    inv_thr = tuple(np.nextafter(1 - t, 0) for t in thr)  # "p > t" for membranes is "1 - p < 1 - t" for cells
    for f in (pixel_error, rand_error, warping_error):
        a = f(prob, y, thresholds=thr, polarity="membrane")
        b = f(1 - prob, 1 - y, thresholds=inv_thr, polarity="cell")
        assert a.errors == pytest.approx(b.errors, abs=1e-12), f.__name__


# --------------------------------------------------------------------------------------------------
# Real ISBI 2012 labels: realistic predictions
# --------------------------------------------------------------------------------------------------


@needs_isbi
def test_isbi_identical_and_perturbed_predictions():
    membrane = _isbi_membrane(1)
    for f in (pixel_error, rand_error, warping_error):
        assert f(membrane, membrane, thresholds=0.5).error == 0.0
    # thicker membranes (cells eroded by one pixel): many wrong pixels, few topological errors
    thick = ndi.binary_dilation(membrane).astype(float)
    pe, we = pixel_error(thick, membrane, thresholds=0.5), warping_error(thick, membrane, thresholds=0.5)
    assert pe.error > 0.05
    assert we.error < pe.error / 20
    assert we.mergers == 0  # thicker membranes cannot join cells
    # thinner membranes may join cells through gaps: mergers, no splits
    thin = ndi.binary_erosion(membrane, border_value=1).astype(float)
    wt = warping_error(thin, membrane, thresholds=0.5)
    assert wt.mergers > 0 and wt.splits == 0
    # a realistic noisy probability map: the best threshold lies in the middle
    prob = _noisy_probability(membrane)
    w = warping_error(prob, membrane)
    assert 0.3 <= w.threshold <= 0.7 and 0 < w.error < 0.01
    assert w.errors.shape == (len(DEFAULT_THRESHOLDS),)


@needs_isbi
def test_batch_pools_counts_over_images():
    m0, m1 = _isbi_membrane(0)[:256, :256], _isbi_membrane(2)[:256, :256]
    p0, p1 = _noisy_probability(m0, 1), _noisy_probability(m1, 2)
    batch_p = np.stack([p0, p1])[:, None]
    batch_y = np.stack([m0, m1])[:, None]
    thr = (0.4, 0.5, 0.6)
    single = [pixel_error(p, m, thresholds=thr).errors for p, m in ((p0, m0), (p1, m1))]
    assert pixel_error(batch_p, batch_y, thresholds=thr).errors == pytest.approx((single[0] + single[1]) / 2)
    w = [warping_error(p, m, thresholds=thr) for p, m in ((p0, m0), (p1, m1))]
    wb = warping_error(batch_p, batch_y, thresholds=thr)
    assert wb.errors == pytest.approx((w[0].errors + w[1].errors) / 2)
    k = list(thr).index(wb.threshold)
    assert wb.splits == sum(
        warping_error(p, m, thresholds=thr[k]).splits for p, m in ((p0, m0), (p1, m1))
    )


# --------------------------------------------------------------------------------------------------
# MONAI metric classes
# --------------------------------------------------------------------------------------------------


def test_metric_classes_match_functions_and_accumulate():
    ys = [torch.as_tensor(~_random_blobs((32, 36), s, level=-0.3), dtype=torch.float32) for s in range(4)]
    ps = [torch.clamp(torch.as_tensor(ndi.gaussian_filter(y.numpy(), 1.2)) + 0.05 * s, 0, 1) for s, y in enumerate(ys)]
    y = torch.stack(ys)[:, None]
    p = torch.stack(ps)[:, None].float()
    thr = (0.3, 0.5, 0.7)
    for metric, func in (
        (PixelErrorMetric(thresholds=thr), pixel_error),
        (RandErrorMetric(thresholds=thr), rand_error),
        (WarpingErrorMetric(thresholds=thr), warping_error),
    ):
        out = metric(y_pred=p[:2], y=y[:2])  # a batch-first tensor
        assert out.dtype == torch.float64 and out.shape[:2] == (2, 3)
        metric(y_pred=[p[2], p[3]], y=[y[2], y[3]])  # a list of channel-first tensors
        expected = func(p, y, thresholds=thr)
        assert float(metric.aggregate()) == pytest.approx(expected.error)
        details = metric.aggregate_details()
        assert details.threshold == expected.threshold
        assert details.errors == pytest.approx(expected.errors)
        assert metric.get_buffer().shape[0] == 4
        metric.reset()
        with pytest.raises(ValueError, match="nothing to aggregate"):
            metric.aggregate()


def test_warping_metric_details_carry_topological_counts():
    y = torch.ones(1, 1, 12, 12)
    y[..., 1:11, 1:11] = 0
    cut = y.clone()
    cut[..., 1:11, 6] = 1
    metric = WarpingErrorMetric(thresholds=(0.5,))
    metric(y_pred=cut, y=y)
    metric(y_pred=cut, y=y)
    d = metric.aggregate_details()
    assert d.splits == 2 and d.error == pytest.approx(1 / 144)


# --------------------------------------------------------------------------------------------------
# Bad input gets a clear error
# --------------------------------------------------------------------------------------------------


def test_bad_input_errors():
    y = np.zeros((8, 8))
    y[:, 3] = 1
    with pytest.raises(ValueError, match="same shape"):
        pixel_error(y, y[:, :-1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rand_error(y * 3 - 1, y)  # logits instead of probabilities
    with pytest.raises(ValueError, match="non-finite"):
        pixel_error(np.full((8, 8), np.nan), y)
    with pytest.raises(ValueError, match="y / 255"):
        pixel_error(y, y * 255)  # an 8-bit label image
    with pytest.raises(ValueError, match="non-integer"):
        pixel_error(y, y * 0.5)
    with pytest.raises(ValueError, match="polarity"):
        pixel_error(y, y, polarity="foreground")
    with pytest.raises(ValueError, match="mode"):
        pixel_error(y, y, mode="f1")
    with pytest.raises(ValueError, match="normalization"):
        rand_error(y, y, normalization="n")
    with pytest.raises(ValueError, match="thresholds"):
        pixel_error(y, y, thresholds=(0.5, 1.5))
    with pytest.raises(ValueError, match="thresholds"):
        pixel_error(y, y, thresholds=())
    with pytest.raises(ValueError, match="one channel"):
        pixel_error(np.stack([y, y])[None], np.stack([y, y])[None])
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        pixel_error(y[None], y[None])  # ambiguous (1, H, W)
    with pytest.raises(ValueError, match="2D images only"):
        warping_error(np.zeros((1, 1, 4, 8, 8)), np.zeros((1, 1, 4, 8, 8)))
    with pytest.raises(ValueError, match="connectivity"):
        rand_error(y, y, connectivity=3)
    with pytest.raises(TypeError, match="y_pred"):
        pixel_error(None, y)
    metric = PixelErrorMetric()
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        metric(y_pred=torch.zeros(8, 8), y=torch.zeros(8, 8))
    with pytest.raises(ValueError, match="polarity"):
        WarpingErrorMetric(polarity="cells")
    with pytest.raises(ValueError, match="2D images only"):
        WarpingErrorMetric()(y_pred=torch.zeros(1, 1, 3, 8, 8), y=torch.zeros(1, 1, 3, 8, 8))

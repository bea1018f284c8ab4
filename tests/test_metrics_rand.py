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

"""Adapted Rand error: scikit-image as an independent reference, a brute-force pair count, and the ISBI 2012
Rand error of thresholded maps (2D on a real ISBI 2012 training label, 3D) against a scikit-image pipeline."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import monai_unet2015.metrics.contingency as contingency_module
import monai_unet2015.metrics.rand as rand_module
from monai_unet2015.metrics import adapted_rand_error, rand_error
from metrics_data import (  # noqa: I001
    needs_isbi,
    isbi_membrane as _isbi_membrane,
    noisy_probability as _noisy_probability,
    random_blobs as _random_blobs,
)


# --------------------------------------------------------------------------------------------------
# doctests of the modules (their Examples blocks must run)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [rand_module, contingency_module])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# --------------------------------------------------------------------------------------------------
# Rand error against scikit-image and a brute-force pair count
# --------------------------------------------------------------------------------------------------


def test_adapted_rand_matches_skimage_where_definitions_coincide():
    from skimage.metrics import adapted_rand_error as sk_adapted_rand_error

    rng = np.random.default_rng(0)
    for _ in range(5):
        gt = rng.integers(0, 6, (30, 31))
        pred = rng.integers(1, 5, (30, 31))  # no predicted 0: both definitions agree exactly
        ours = adapted_rand_error(gt, pred, normalization="pairs")
        ref, _, _ = sk_adapted_rand_error(gt, pred)
        assert ours.error == pytest.approx(ref, abs=1e-12)
        # predicted 0 inside the true foreground is a singleton here: give each such pixel its own label
        pred0 = rng.integers(0, 5, (30, 31))
        unique = pred0.copy()
        zeros = unique == 0
        unique[zeros] = 1000 + np.arange(zeros.sum())
        assert adapted_rand_error(gt, pred0, normalization="pairs").error == pytest.approx(
            sk_adapted_rand_error(gt, unique)[0], abs=1e-12
        )


def _brute_force_rand(gt: np.ndarray, pred: np.ndarray, self_pairs: bool) -> float:
    g, p = gt.ravel(), pred.ravel()
    idx = np.flatnonzero(g > 0)
    ab = a = b = 0
    for u in idx:
        for v in idx:
            if u == v and not self_pairs:
                continue
            same_true = g[u] == g[v]
            same_pred = u == v or (p[u] == p[v] and p[u] != 0)
            a += same_true
            b += same_pred
            ab += same_true and same_pred
    return 1 - 2 * ab / (a + b)


def test_adapted_rand_against_brute_force_pair_count():
    rng = np.random.default_rng(1)
    for _ in range(3):
        gt = rng.integers(0, 4, (6, 7))
        pred = rng.integers(0, 4, (6, 7))
        assert adapted_rand_error(gt, pred).error == pytest.approx(_brute_force_rand(gt, pred, True), abs=1e-12)
        assert adapted_rand_error(gt, pred, "pairs").error == pytest.approx(
            _brute_force_rand(gt, pred, False), abs=1e-12
        )
    perfect = adapted_rand_error(gt, gt)
    assert perfect == (0.0, 1.0, 1.0)
    assert np.isnan(adapted_rand_error(np.zeros((3, 3), int), gt[:3, :3]).error)  # no true foreground


@needs_isbi
def test_rand_error_on_isbi_slice_matches_skimage_pipeline():
    from skimage.measure import label as sk_label
    from skimage.metrics import adapted_rand_error as sk_adapted_rand_error

    membrane = _isbi_membrane(0)
    prob = _noisy_probability(membrane)
    gt = sk_label(membrane == 0, connectivity=1)
    ours = rand_error(prob, membrane, thresholds=(0.4, 0.5, 0.6), normalization="pairs")
    for t, err in zip(ours.thresholds, ours.errors):
        pred = sk_label(prob <= t, connectivity=1)
        zeros = pred == 0
        pred[zeros] = pred.max() + 1 + np.arange(zeros.sum())  # membrane pixels: singletons
        assert err == pytest.approx(sk_adapted_rand_error(gt, pred)[0], abs=1e-12)
    assert ours.threshold == 0.5


def test_rand_error_3d_matches_skimage_pipeline():
    from skimage.measure import label as sk_label
    from skimage.metrics import adapted_rand_error as sk_adapted_rand_error

    membrane = (~_random_blobs((12, 30, 28), 7, sigma=2.5, level=-0.05)).astype(float)
    prob = _noisy_probability(membrane, seed=3, noise=0.4, sigma=1.0)
    t = 0.5
    ours = rand_error(prob[None, None], membrane[None, None], thresholds=t, normalization="pairs").error
    gt = sk_label(membrane == 0, connectivity=1)
    pred = sk_label(prob <= t, connectivity=1)
    zeros = pred == 0
    pred[zeros] = pred.max() + 1 + np.arange(zeros.sum())
    assert ours == pytest.approx(sk_adapted_rand_error(gt, pred)[0], abs=1e-12)
    # 26-connected cells merge more: a different (defined) value
    assert rand_error(prob[None, None], membrane[None, None], thresholds=t, connectivity=3).error >= 0.0

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

"""Simple points, topology-preserving warping and topological error counts (the machinery of the ISBI 2012
warping error): the lookup table against the Yokoi number, brute-force topology checks on random images and
hand-built splits and mergers."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy import ndimage as ndi

import monai_unet2015.metrics.simple_point as simple_point_module
import monai_unet2015.metrics.topology as topology_module
from monai_unet2015.metrics import topological_errors
from monai_unet2015.metrics.simple_point import neighbour_codes, simple_point_lut, simple_points, warp_binary
from metrics_data import random_blobs as _random_blobs


def _counts(image: np.ndarray) -> tuple[int, int]:
    """(#4-connected foreground components, #8-connected background components, outside included)."""
    pad = np.pad(image, 1)
    return ndi.label(pad, ndi.generate_binary_structure(2, 1))[1], ndi.label(~pad, np.ones((3, 3)))[1]


# --------------------------------------------------------------------------------------------------
# doctests of the modules (their Examples blocks must run)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [simple_point_module, topology_module])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# --------------------------------------------------------------------------------------------------
# Simple points
# --------------------------------------------------------------------------------------------------


def _yokoi(code: int, foreground_four: bool) -> int:
    """Yokoi connectivity number, an independent characterisation: simple iff it equals 1."""
    bits = [(code >> k) & 1 for k in range(8)]
    ring = [bits[4], bits[2], bits[1], bits[0], bits[3], bits[5], bits[6], bits[7]]  # E, NE, N, NW, W, SW, S, SE
    if not foreground_four:
        ring = [1 - v for v in ring]
    return sum(ring[k] - ring[k] * ring[(k + 1) % 8] * ring[(k + 2) % 8] for k in (0, 2, 4, 6))


@pytest.mark.parametrize("connectivity", [1, 2])
def test_lut_matches_yokoi_number(connectivity):
    lut = simple_point_lut(connectivity)
    expected = [_yokoi(c, foreground_four=connectivity == 1) == 1 for c in range(256)]
    assert lut.tolist() == expected
    assert simple_point_lut(4 if connectivity == 1 else 8).tolist() == expected  # aliases


def test_simple_points_match_global_component_counts():
    # In 2D a flip preserves topology iff it changes neither the number of foreground (4-connected)
    # nor of background (8-connected) components: brute force on random images.
    for seed in range(3):
        img = np.random.default_rng(seed).random((9, 10)) < 0.55
        simple = simple_points(img)
        before = _counts(img)
        for r in range(img.shape[0]):
            for c in range(img.shape[1]):
                flipped = img.copy()
                flipped[r, c] = not flipped[r, c]
                assert simple[r, c] == (_counts(flipped) == before), (seed, r, c)


def test_neighbour_codes_bit_order():
    img = np.zeros((3, 3), bool)
    for k, (dr, dc) in enumerate(simple_point_module.NEIGHBOUR_OFFSETS):
        img[:] = False
        img[1 + dr, 1 + dc] = True
        assert neighbour_codes(img)[1, 1] == 1 << k


# --------------------------------------------------------------------------------------------------
# Warping
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_warping_preserves_topology_and_stops_at_non_simple_points(seed):
    source = _random_blobs((48, 52), seed)
    target = _random_blobs((48, 52), seed + 100)
    priority = np.random.default_rng(seed).random(source.shape)
    warped, rounds = warp_binary(source, target, priority=priority, return_iterations=True)
    assert _counts(warped) == _counts(source)
    remaining = warped != target
    assert remaining.sum() < (source != target).sum()
    # nothing left that a simple-point flip could fix
    assert not np.any(simple_points(warped) & remaining)
    assert rounds > 0
    assert np.array_equal(warp_binary(source, target, priority=priority), warped)  # deterministic


def test_warping_of_identical_images_and_bad_input():
    img = _random_blobs((20, 20), 3)
    assert np.array_equal(warp_binary(img, img), img)
    with pytest.raises(ValueError, match="same shape"):
        warp_binary(img, img[:-1])
    with pytest.raises(ValueError, match="2D"):
        warp_binary(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="binary"):
        warp_binary(img * 2, img)
    with pytest.raises(ValueError, match="priority"):
        warp_binary(img, ~img, priority=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="connectivity"):
        warp_binary(img, img, connectivity=3)


# --------------------------------------------------------------------------------------------------
# Topological errors
# --------------------------------------------------------------------------------------------------


def test_topological_errors_direct():
    gt = np.zeros((7, 11), bool)
    gt[1:6, 1:5] = True
    gt[1:6, 6:10] = True
    both = gt.copy()
    both[3, 5] = True  # bridge: merger
    both[1:6, 2] = False  # cut: split
    errs = topological_errors(gt, both)
    assert (errs.splits, errs.mergers) == (1, 1)
    assert topological_errors(gt, gt) == (0, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="same shape"):
        topological_errors(gt, gt[:, :-1])

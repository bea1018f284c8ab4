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

"""Marker-controlled watershed instances: touching cells split, holes filled, specks removed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from monai.data import MetaTensor
from monai_unet2015.transforms.instances.watershed import WatershedInstances, WatershedInstancesd, watershed_instances


def _two_touching_discs(gap: float = 0.6):
    yy, xx = np.mgrid[:40, :70]
    left, right = np.hypot(yy - 20, xx - 20) < 15, np.hypot(yy - 20, xx - 47) < 15
    dist = np.maximum(ndi.distance_transform_edt(left), ndi.distance_transform_edt(right))
    prob = np.where(left | right, 0.55 + 0.45 * np.minimum(dist / 6, 1), 0.05)
    touching = (np.abs(xx - 33.5) < 1.5) & (left | right)  # the faint gap between them
    prob[touching] = gap
    return prob.astype(np.float32), left, right


def test_two_touching_discs_become_two_instances():
    prob, left, right = _two_touching_discs()
    _, n_cc = ndi.label(prob >= 0.5)
    assert n_cc == 1  # the connected components of the mask merge them
    inst = watershed_instances(prob, 0.5, 0.9, min_marker_size=5, min_size=20)
    assert inst.max() == 2
    for disc in (left, right):
        ids, counts = np.unique(inst[disc], return_counts=True)
        assert counts.max() / disc.sum() > 0.9  # each disc is mostly one instance
    assert inst[20, 20] != inst[20, 47]


def test_hole_filled_and_border_gap_kept():
    prob = np.zeros((30, 30), np.float32)
    prob[5:25, 5:25] = 0.99
    prob[12:16, 12:16] = 0.1  # a hole inside the cell
    prob[0:10, 26:30] = 0.99  # a cell at the image border
    prob[3:6, 27:30] = 0.1  # a notch open to the border: not a hole
    inst = watershed_instances(prob, 0.5, 0.9, min_marker_size=1, min_size=1)
    assert inst[12:16, 12:16].min() > 0 and len(np.unique(inst[5:25, 5:25])) == 1
    assert (inst[3:6, 27:30] == 0).all()
    no_fill = watershed_instances(prob, 0.5, 0.9, min_marker_size=1, min_size=1, fill_holes=False)
    assert (no_fill[12:16, 12:16] == 0).all()


def test_specks_removed_like_skimage_and_ids_consecutive():
    from skimage.morphology import remove_small_objects

    rng = np.random.default_rng(0)
    prob = ndi.gaussian_filter(rng.random((96, 96)), 2.0)
    prob = (prob - prob.min()) / (prob.max() - prob.min())
    full = watershed_instances(prob, 0.6, 0.6, min_marker_size=1, min_size=1, fill_holes=False)
    ref = remove_small_objects(full, max_size=29)  # the reference filter: objects of < 30 pixels go
    got = watershed_instances(prob, 0.6, 0.6, min_marker_size=1, min_size=30, fill_holes=False)
    np.testing.assert_array_equal(got > 0, ref > 0)
    assert np.unique(got).tolist() == list(range(int(got.max()) + 1))
    assert np.bincount(got.ravel())[1:].min() >= 30


def test_fill_holes_against_a_slow_per_instance_reference():
    rng = np.random.default_rng(1)
    prob = np.zeros((80, 80), np.float32)
    for k, (y, x) in enumerate(rng.integers(10, 70, size=(6, 2))):
        yy, xx = np.mgrid[:80, :80]
        r = np.hypot(yy - y, xx - x)
        prob[(r < 8) & (r > 3)] = 0.99  # rings: each encloses its own hole
    inst = watershed_instances(prob, 0.5, 0.9, min_marker_size=1, min_size=1, fill_holes=False)
    slow = inst.copy()
    for i in range(1, int(inst.max()) + 1):  # one instance at a time
        filled = ndi.binary_fill_holes(inst == i)
        slow[filled & (slow == 0)] = i
    np.testing.assert_array_equal(watershed_instances(prob, 0.5, 0.9, min_marker_size=1, min_size=1), slow)


def test_types_meta_3d_and_errors():
    prob, _, _ = _two_touching_discs()
    meta = MetaTensor(torch.from_numpy(prob)[None], meta={"filename_or_obj": "f.tif"})
    out = WatershedInstances(0.5, 0.9, min_marker_size=5, min_size=20)(meta)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "f.tif" and out.dtype == torch.int32
    assert int(out.max()) == 2
    np_out = WatershedInstances(0.5, 0.9, min_marker_size=5, min_size=20)(prob[None])
    assert isinstance(np_out, np.ndarray) and np.array_equal(np_out, out.numpy())
    vol = np.stack([prob] * 4)[None]  # (1, D, H, W)
    assert int(WatershedInstances(0.5, 0.9, min_marker_size=5, min_size=20)(vol).max()) == 2
    d = WatershedInstancesd("prob", output_keys="inst", min_size=20, min_marker_size=5, marker_threshold=0.9)(
        {"prob": torch.from_numpy(prob)[None]}
    )
    assert int(d["inst"].max()) == 2 and d["prob"].dtype == torch.float32
    with pytest.raises(ValueError, match="marker_threshold"):
        WatershedInstances(mask_threshold=0.6, marker_threshold=0.5)
    with pytest.raises(ValueError, match="min_size"):
        WatershedInstances(min_size=-1)
    with pytest.raises(ValueError, match=r"\(1, H, W\)"):
        WatershedInstances()(prob)
    with pytest.raises(ValueError, match="membrane"):
        WatershedInstances(polarity="membranes")


def test_neurons_from_a_membrane_probability():
    """EM: every pixel joins a neuron, the membranes are the borders, and the real labels of a slice are recovered."""
    from PIL import Image

    from monai_unet2015.metrics import adapted_rand_error

    label = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "isbi2012" / "train" / "label" / "03.png"
    if not label.is_file():
        pytest.skip("needs ../shared/data")
    cells = np.asarray(Image.open(label)) > 127
    membrane = ndi.gaussian_filter((~cells).astype(np.float32), 1.0)  # a soft membrane map from the truth
    neurons = watershed_instances(membrane, 0.0, 0.8, min_marker_size=5, min_size=0, fill_holes=False,
                                  polarity="membrane")
    np.testing.assert_array_equal(
        neurons, watershed_instances(1.0 - membrane, 0.0, 0.8, min_marker_size=5, min_size=0, fill_holes=False)
    )
    assert neurons.min() == 1  # nothing left unassigned
    truth = ndi.label(cells)[0]
    assert adapted_rand_error(truth, neurons).error < 0.01
    assert abs(int(neurons.max()) - int(truth.max())) <= 0.1 * truth.max()


def test_holes_between_instances_and_one_pixel_holes():
    """A hole shared by two instances takes the nearest instance pixel's id (as a whole-image distance
    transform would); one-pixel and larger holes inside one instance take its id."""
    from monai_unet2015.transforms.instances.cleanup import fill_instance_holes as _fill_holes

    labels = np.zeros((30, 40), np.int32)
    labels[2:28, 2:20] = 1
    labels[2:28, 20:38] = 2
    labels[8:22, 10:30] = 0  # a hole across the border of 1 and 2
    labels[4, 5] = 0  # one-pixel hole in 1
    labels[24:27, 30:34] = 0  # a small hole in 2
    labels[0:2, 0:3] = 0  # background at the image border: not a hole
    expect = labels.copy()
    holes = ndi.binary_fill_holes(labels > 0) & (labels == 0)
    idx = ndi.distance_transform_edt(labels == 0, return_distances=False, return_indices=True)
    expect[holes] = labels[tuple(i[holes] for i in idx)]
    out = _fill_holes(labels.copy())
    assert (out[holes] > 0).all() and out[4, 5] == 1 and (out[24:27, 30:34] == 2).all() and (out[0:2, 0:3] == 0).all()
    # away from the ties of the middle column, the shared hole is split by nearest instance pixel
    np.testing.assert_array_equal(np.delete(out, [19, 20], axis=1), np.delete(expect, [19, 20], axis=1))
    # 3D: a cavity inside one instance
    vol = np.ones((7, 7, 7), np.int32)
    vol[2:5, 2:5, 2:5] = 0
    assert (_fill_holes(vol.copy()) == 1).all()

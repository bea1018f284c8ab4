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

"""Removal of small instances and hole filling against MONAI's own transforms, hand-made cases and real labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from monai.data import MetaTensor
from monai.transforms import FillHoles, RemoveSmallObjects
from monai_unet2015.transforms.instances import (
    FillInstanceHoles,
    FillInstanceHolesd,
    RemoveSmallInstances,
    RemoveSmallInstancesd,
)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")


def _real_labels() -> list[np.ndarray]:
    import tifffile

    return [
        tifffile.imread(DATA / "dsb2018-nuclei" / "mask2d.tif").astype(np.int32),
        tifffile.imread(DATA / "dic-hela" / "01_GT" / "SEG" / "man_seg002.tif").astype(np.int32),
    ]


def test_specks_removed_hand_made():
    labels = np.zeros((1, 12, 12), np.int32)
    labels[0, 1:6, 1:6] = 1  # 25 px
    labels[0, 8, 8] = 2  # a speck
    labels[0, 9:11, 1:3] = 3  # 4 px
    out = RemoveSmallInstances(5)(labels)
    assert set(np.unique(out)) == {0, 1} and out.dtype == np.int32
    assert set(np.unique(RemoveSmallInstances(4)(labels))) == {0, 1, 3}
    assert np.array_equal(RemoveSmallInstances(0)(labels), labels)


@needs_data
@pytest.mark.parametrize("min_size", [20, 150, 600])
def test_remove_small_equals_monai_on_real_labels(min_size):
    for labels in _real_labels():
        ref = np.asarray(RemoveSmallObjects(min_size=min_size)(labels[None]))
        np.testing.assert_array_equal(RemoveSmallInstances(min_size)(labels[None]), ref)


def test_holes_filled_hand_made_and_3d():
    ring = np.zeros((1, 9, 9), np.int32)
    ring[0, 1:8, 1:8] = 4
    ring[0, 3:6, 3:6] = 0  # the hole
    ring[0, 0:2, 7:9] = 0  # background at the border stays
    out = FillInstanceHoles()(ring)
    assert (out[0, 3:6, 3:6] == 4).all() and (out[0, 0, 8] == 0)
    vol = np.ones((1, 6, 7, 8), np.int32)
    vol[0, 2:4, 2:5, 3:6] = 0  # a cavity
    assert (FillInstanceHoles()(vol) == 1).all()


@needs_data
def test_punched_holes_are_restored_on_real_labels():
    """Holes punched strictly inside real instances are given back their instance's id, as MONAI's per-label
    ``FillHoles`` (a loop over the labels) gives them; gaps enclosed by two touching instances are filled too."""
    rng = np.random.default_rng(0)
    for labels in _real_labels():
        inside = np.zeros(labels.shape, bool)
        for i in np.unique(labels)[1:]:  # the test's own slow loop over instances
            inside |= ndi.binary_erosion(labels == i, iterations=3)
        holes = inside & (rng.random(labels.shape) < 0.05)
        holes = ndi.binary_dilation(holes) & inside  # 1- to several-pixel holes
        punched = np.where(holes, 0, labels)
        out = FillInstanceHoles()(punched[None])[0]
        np.testing.assert_array_equal(out[labels > 0], labels[labels > 0])  # every punched pixel restored
        # the rest of what changed are the label map's own holes (a few enclosed background pixels)
        np.testing.assert_array_equal(out, FillInstanceHoles()(labels[None])[0])
        monai = np.asarray(FillHoles()(punched[None]))[0]
        np.testing.assert_array_equal(out[monai != punched], monai[monai != punched])  # what MONAI fills, we fill
        # MONAI fills per label: a gap enclosed by two touching instances is no hole of either; we share it out
        assert (labels[out != monai] == 0).all() and (out != monai).sum() < 50


def test_types_meta_and_dictionary_versions():
    ring = torch.zeros(1, 5, 5, dtype=torch.int32)
    ring[0, 1:4, 1:4] = 7
    ring[0, 2, 2] = 0
    meta = MetaTensor(ring.clone(), meta={"filename_or_obj": "x.tif"})
    out = FillInstanceHoles()(meta)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "x.tif" and int(out[0, 2, 2]) == 7
    d = FillInstanceHolesd("inst")({"inst": ring.clone()})
    assert isinstance(d["inst"], torch.Tensor) and int(d["inst"][0, 2, 2]) == 7
    d = RemoveSmallInstancesd("inst", min_size=9)({"inst": ring.clone()})
    assert int(d["inst"].max()) == 0  # 8 pixels < 9


def test_bad_input():
    with pytest.raises(ValueError, match="min_size"):
        RemoveSmallInstances(-1)
    with pytest.raises(ValueError, match="min_size"):
        RemoveSmallInstances(2.5)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        FillInstanceHoles()(np.zeros((4, 4), np.int32))
    with pytest.raises(ValueError, match="integer"):
        FillInstanceHoles()(np.full((1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="non-negative"):
        RemoveSmallInstances(2)(np.full((1, 4, 4), -1))

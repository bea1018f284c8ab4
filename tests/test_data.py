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

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from monai.data import MetaTensor
from monai.transforms import Compose, LoadImaged
from monai.utils import TransformBackends
from monai_unet2015.data import SelectSliced, ctc_datalist, isbi2012_datalist

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the clone")


def _make_slices(root: Path, n: int = 3) -> list[np.ndarray]:
    (root / "image").mkdir(parents=True)
    (root / "label").mkdir()
    imgs = []
    for k in range(n):
        img = (np.arange(24 * 20).reshape(24, 20) + 7 * k).astype(np.uint8)
        Image.fromarray(img).save(root / "image" / f"{k:02d}.png")
        Image.fromarray(((img % 2) * 255).astype(np.uint8)).save(root / "label" / f"{k:02d}.png")
        imgs.append(img)
    return imgs


def test_isbi_slices_layout(tmp_path):
    imgs = _make_slices(tmp_path)
    items = isbi2012_datalist(tmp_path, indices=[0, 2])
    assert [it["index"] for it in items] == [0, 2]
    assert Path(items[1]["image"]).name == "02.png" and Path(items[1]["label"]).name == "02.png"
    load = Compose([LoadImaged(["image", "label"], ensure_channel_first=True), SelectSliced(["image", "label"])])
    out = load(items[1])
    assert out["image"].shape == (1, 20, 24)  # MONAI's PIL reader puts the width first; labels alike
    np.testing.assert_array_equal(out["image"][0].numpy().T, imgs[2])


def test_isbi_stack_layout(tmp_path):
    vol = np.random.default_rng(0).integers(0, 255, (4, 16, 12), dtype=np.uint8)
    lab = (vol > 127).astype(np.uint8) * 255
    tifffile.imwrite(tmp_path / "train-volume.tif", vol, photometric="minisblack")
    tifffile.imwrite(tmp_path / "train-labels.tif", lab, photometric="minisblack")
    items = isbi2012_datalist(tmp_path, indices=range(1, 3))
    assert [it["slice"] for it in items] == [1, 2]
    load = Compose([LoadImaged(["image", "label"], ensure_channel_first=True), SelectSliced(["image", "label"])])
    out = load(items[1])
    assert out["image"].shape == (1, 12, 16)  # the same orientation as a PNG slice read by MONAI
    np.testing.assert_array_equal(out["image"][0].numpy().T, vol[2])
    np.testing.assert_array_equal(out["label"][0].numpy().T, lab[2])


def test_isbi_errors(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        isbi2012_datalist(tmp_path / "missing")
    with pytest.raises(ValueError, match="no ISBI 2012 layout"):
        isbi2012_datalist(tmp_path)
    _make_slices(tmp_path)
    with pytest.raises(ValueError, match=r"indices \[7\]"):
        isbi2012_datalist(tmp_path, indices=[7])
    with pytest.raises(ValueError, match="out of range"):
        SelectSliced("image")({"image": torch.zeros(1, 3, 3, 2), "slice": 5})


def test_select_slice_array_and_dictionary():
    import monai_unet2015.data as data
    from monai_unet2015.transforms import SelectSlice, SelectSliceD, SelectSliceDict
    from monai_unet2015.transforms import SelectSliced as SelectSlicedHome

    # home: monai_unet2015.transforms; monai_unet2015.data re-exports it for the bundle configs
    assert SelectSliced is SelectSlicedHome and SelectSliceD is SelectSliced and SelectSliceDict is SelectSliced
    assert data.SelectSliceD is SelectSliced and data.SelectSliceDict is SelectSliced
    assert SelectSlice.backend == SelectSliced.backend == [TransformBackends.TORCH, TransformBackends.NUMPY]
    stack = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(SelectSlice(index=3)(stack), stack[..., 3])
    np.testing.assert_array_equal(SelectSlice(axis=1)(stack, index=2), stack[:, 2])
    np.testing.assert_array_equal(SelectSlice(index=0)(stack, index=4), stack[..., 4])  # call overrides init
    assert isinstance(SelectSlice(index=1)(stack), np.ndarray)
    out = SelectSlice(index=1)(torch.as_tensor(stack))
    assert type(out) is torch.Tensor and out.dtype == torch.int64
    meta = MetaTensor(torch.as_tensor(stack, dtype=torch.float32), meta={"filename_or_obj": "stack.tif"})
    out = SelectSlice(index=1)(meta)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "stack.tif" and out.shape == (2, 3, 4)
    d = SelectSliced(["image", "label"], axis=-1)({"image": meta, "label": torch.as_tensor(stack), "slice": 2})
    assert isinstance(d["image"], MetaTensor) and d["image"].meta["filename_or_obj"] == "stack.tif"
    np.testing.assert_array_equal(d["label"].numpy(), stack[..., 2])
    untouched = {"image": stack}
    assert SelectSliced("image")(untouched)["image"] is stack  # no "slice": a single-slice item passes through
    with pytest.raises(ValueError, match="out of range"):
        SelectSlice(index=5)(stack)
    with pytest.raises(ValueError, match="no index"):
        SelectSlice()(stack)
    with pytest.raises(ValueError, match="^label: slice 5 out of range"):
        SelectSliced("label")({"label": stack, "slice": 5})


def test_ctc_layout(tmp_path):
    (tmp_path / "01").mkdir()
    (tmp_path / "01_GT" / "SEG").mkdir(parents=True)
    for t in range(4):
        tifffile.imwrite(tmp_path / "01" / f"t{t:03d}.tif", np.full((8, 8), t, np.uint8))
    for t in (1, 3):
        tifffile.imwrite(tmp_path / "01_GT" / "SEG" / f"man_seg{t:03d}.tif", np.full((8, 8), t, np.uint16))
    items = ctc_datalist(tmp_path)
    assert [it["frame"] for it in items] == [1, 3]
    assert Path(items[0]["image"]).name == "t001.tif" and Path(items[0]["label"]).name == "man_seg001.tif"
    assert len(ctc_datalist(tmp_path, labelled=False)) == 4
    with pytest.raises(ValueError, match="truth"):
        ctc_datalist(tmp_path, truth="XX")
    with pytest.raises(ValueError, match=r"frames \[2\]"):
        ctc_datalist(tmp_path, frames=[2])


@needs_shared
def test_real_datasets():
    assert len(isbi2012_datalist(SHARED / "isbi2012" / "train")) == 25
    assert len(isbi2012_datalist(SHARED / "isbi2012" / "test", labelled=False)) == 30
    gt = ctc_datalist(SHARED / "dic-hela")
    assert [it["frame"] for it in gt] == [2, 5, 21, 31, 33, 34, 39, 54, 67]
    out = LoadImaged(["image", "label"], ensure_channel_first=True)(gt[0])
    assert out["image"].shape == out["label"].shape == (1, 512, 512)
    assert int(out["label"].max()) >= 5  # instance ids

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

"""The Cell Tracking Challenge result layout: names, dtype, orientation, and the cells bundle's ``--ctc_result``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from monai.data import MetaTensor
from monai_unet2015.bundle import BundleInputError
from monai_unet2015.data import SaveCTCResultd, ctc_result_path, write_ctc_mask
from monai_unet2015.metrics import seg_measure

REPO = Path(__file__).resolve().parents[1]
CELLS = REPO / "bundles" / "unet2015_dic_hela"
DATA = REPO.parent / "shared" / "data" / "dic-hela"


def test_result_names():
    assert ctc_result_path("/d/01/t000.tif", "/r") == Path("/r/01_RES/mask000.tif")
    assert ctc_result_path("/d/02/t083.tif", "/r", sequence="07") == Path("/r/07_RES/mask083.tif")
    assert ctc_result_path("/d/01/t1234.tif", "/r") == Path("/r/01_RES/mask1234.tif")  # 4 digits from 1000 on
    assert ctc_result_path("/d/01/t5.tif", "/r", digits=4) == Path("/r/01_RES/mask0005.tif")
    with pytest.raises(BundleInputError, match="tTTT.tif"):
        ctc_result_path("/d/01/frame_5.tif", "/r")


def test_mask_dtype_range_and_orientation(tmp_path):
    ids = np.array([[0, 1, 1], [2, 0, 65535]])
    p = write_ctc_mask(tmp_path / "01_RES" / "mask000.tif", ids)
    back = tifffile.imread(p)
    assert back.dtype == np.uint16 and np.array_equal(back, ids) and not list(p.parent.glob("*.partial*"))
    with pytest.raises(ValueError, match="0..65535"):
        write_ctc_mask(tmp_path / "x.tif", np.array([[70000]]))
    with pytest.raises(ValueError, match="integer"):
        write_ctc_mask(tmp_path / "x.tif", np.array([[0.5]]))
    # the transform writes MONAI's (x, y) maps in the frame's (row, column) layout
    image = MetaTensor(torch.zeros(1, 3, 2), meta={"filename_or_obj": str(tmp_path / "01" / "t004.tif")})
    inst = torch.tensor([[[0, 5], [0, 5], [9, 9]]])
    SaveCTCResultd("instances", tmp_path / "out")({"image": image, "instances": inst})
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "01_RES" / "mask004.tif"), inst[0].numpy().T)


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside the clone")
def test_cells_bundle_writes_a_sequence_in_the_ctc_layout(tmp_path):
    """``--ctc_result true`` on a sequence folder ``01``: the masks score the project's SEG against the gold
    truth exactly as the bundle's own instance maps do."""
    seq = tmp_path / "01"
    seq.mkdir()
    frames = (21, 54)
    for t in frames:
        shutil.copy(DATA / "01" / f"t{t:03d}.tif", seq / f"t{t:03d}.tif")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
         "--dataset_dir", str(seq), "--output_dir", str(out), "--ctc_result", "true"],
        cwd=CELLS, env=dict(os.environ, OMP_NUM_THREADS="2"), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (out / "01_RES").iterdir()) == ["mask021.tif", "mask054.tif"]
    masks = [tifffile.imread(out / "01_RES" / f"mask{t:03d}.tif") for t in frames]
    refs = [tifffile.imread(DATA / "01_GT" / "SEG" / f"man_seg{t:03d}.tif") for t in frames]
    own = [tifffile.imread(out / f"t{t:03d}_instances.tif") for t in frames]
    assert all(m.dtype == np.uint16 and m.shape == (512, 512) for m in masks)
    for m, o in zip(masks, own):
        np.testing.assert_array_equal(m, o)
    seg = seg_measure(np.stack(masks)[:, None], np.stack(refs)[:, None].astype(np.int64)).seg
    assert 0.5 < seg <= 1.0, seg  # the shipped weights' instances (not a random network's)

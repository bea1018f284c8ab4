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

"""monai_unet2015.bundle.evaluation and scripts/score_candidates.py: the splits, the candidates, real scores."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai_unet2015.bundle import BundleInputError, average_weights, candidate_weights, export_weights, split_overrides
from monai_unet2015.metrics import pixel_error, rand_error
from monai_unet2015.networks.nets import UNet2015

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
EM = REPO / "bundles" / "unet2015_em_membranes"
DIC = REPO / "bundles" / "unet2015_dic_hela"


def _main(argv):
    return runpy.run_path(str(REPO / "scripts" / "score_candidates.py"))["main"](argv)


def test_splits_are_the_bundles_own():
    """Validation = train.json's val_<x> (what the training validates on), test = evaluate.json's default."""
    for root, key in ((EM, "indices"), (DIC, "frames")):
        train = json.loads((root / "configs" / "train.json").read_text())
        val = split_overrides(root, "validation")
        assert list(val) == [f"eval_{key}"]
        raw = train[f"val_{key}"]
        assert val[f"eval_{key}"] == (eval(raw[1:]) if isinstance(raw, str) else raw)
        assert split_overrides(root, "test") == {}
    # and the two splits of each bundle do not overlap
    from monai.bundle import ConfigParser

    for root, key in ((EM, "indices"), (DIC, "frames")):
        parser = ConfigParser()
        parser.read_config(str(root / "configs" / "evaluate.json"))
        test = parser.get_parsed_content(f"eval_{key}")
        assert not set(test) & set(split_overrides(root, "validation")[f"eval_{key}"])


def test_bad_split_and_unknown_validation(tmp_path):
    with pytest.raises(ValueError, match="validation"):
        split_overrides(EM, "val")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "evaluate.json").write_text(json.dumps({"eval_indices": [1]}))
    (tmp_path / "configs" / "train.json").write_text(json.dumps({"val_slices": [0]}))
    with pytest.raises(BundleInputError, match="validation split is not known"):
        split_overrides(tmp_path, "validation")


def test_candidates(tmp_path):
    """A checkpoint's model, its EMA, the mean of files: float16, equal to the hand-made result."""
    a, b = UNet2015(features=(4, 8, 16)), UNet2015(features=(4, 8, 16))
    torch.save({"model": a.state_dict(), "ema_model": b.state_dict()}, tmp_path / "c1.pt")
    torch.save({"model": b.state_dict()}, tmp_path / "c2.pt")
    assert candidate_weights(tmp_path / "c1.pt#ema_model", tmp_path / "ema.pt")["features"] == [4, 8, 16]
    ema = torch.load(tmp_path / "ema.pt", weights_only=True)
    assert all(torch.equal(ema[k], v.half()) for k, v in b.state_dict().items())
    candidate_weights(f"{tmp_path / 'c1.pt'}+{tmp_path / 'c2.pt'}", tmp_path / "mean.pt")
    mean = torch.load(tmp_path / "mean.pt", weights_only=True)
    for k, v in a.state_dict().items():
        if v.is_floating_point():
            assert torch.equal(mean[k], ((v + b.state_dict()[k]) / 2).half()), k
    with pytest.raises(BundleInputError, match="exists"):
        candidate_weights(tmp_path / "c2.pt", tmp_path / "mean.pt")
    # a mean mixes entries: one file's weights with another's EMA (release weights + a run's EMA, say)
    candidate_weights(f"{tmp_path / 'c1.pt'}+{tmp_path / 'c1.pt'}#ema_model", tmp_path / "mixed.pt")
    mixed = torch.load(tmp_path / "mixed.pt", weights_only=True)
    assert all(torch.equal(mixed[k], mean[k]) for k in mean)
    with pytest.raises(BundleInputError, match="no 'ema_model' entry"):
        candidate_weights(f"{tmp_path / 'c1.pt'}+{tmp_path / 'c2.pt'}#ema_model", tmp_path / "x.pt")
    with pytest.raises(BundleInputError, match="one name per checkpoint"):
        average_weights([tmp_path / "c1.pt", tmp_path / "c2.pt"], entry=["model"])
    with pytest.raises(BundleInputError, match="one name"):
        export_weights(tmp_path / "c1.pt", tmp_path / "x.pt", entry=["model"])
    with pytest.raises(BundleInputError, match="empty file name"):
        candidate_weights(f"{tmp_path / 'c1.pt'}+", tmp_path / "x.pt")
    with pytest.raises(SystemExit, match="NAME=FILE"):
        _main(["--bundle", str(EM), str(tmp_path / "c1.pt")])


@pytest.mark.skipif(not (DATA / "isbi2012" / "train").is_dir(), reason="../shared/data is not beside the clone")
def test_shipped_em_weights_on_validation(tmp_path, capsys):
    """The script's figures for the shipped EM weights equal the metrics computed independently on saved maps.

    The reference runs the bundle's ``inference.json`` (one pass) on slices 20-21 and applies
    :py:func:`rand_error` / :py:func:`pixel_error` with the membrane polarity to the written probability maps.
    """
    rows = _main(["--bundle", str(EM), "--tta", "false", f"shipped={EM / 'models' / 'model.pt'}"])
    (row,) = rows
    assert row["split"] == "validation" and row["tta"] is False and row["features"] == [16, 32, 64, 128, 256]
    table = capsys.readouterr().out
    assert "| shipped | no | " in table

    from monai.bundle import ConfigParser

    import tifffile

    parser = ConfigParser()
    parser.read_config(str(EM / "configs" / "inference.json"))
    parser.update({"bundle_root": str(EM), "dataset_dir": str(DATA / "isbi2012" / "train" / "image"),
                   "image_glob": "2[01].png", "output_dir": str(tmp_path / "out"), "tta": False})
    parser.get_parsed_content("initialize")
    parser.get_parsed_content("run")
    membrane = np.stack([tifffile.imread(next((tmp_path / "out").rglob(f"{i:02d}_prob.tif"))) for i in (20, 21)])
    labels = [np.asarray(Image.open(DATA / "isbi2012" / "train" / "label" / f"{i:02d}.png")) for i in (20, 21)]
    truth = (np.stack(labels) == 0).astype(np.uint8)
    ref_rand = rand_error(membrane[:, None], truth[:, None])
    ref_pixel = pixel_error(membrane[:, None], truth[:, None])
    # the evaluation reads the cell probability (1 - membrane): its threshold t is the membrane's 1 - t
    sweep = row["sweeps"]["rand_error"]
    order = np.argsort(1.0 - np.asarray(sweep["thresholds"]))
    np.testing.assert_allclose(np.asarray(sweep["errors"])[order], ref_rand.errors, atol=2e-3)
    np.testing.assert_allclose(np.asarray(row["sweeps"]["pixel_error"]["errors"])[order], ref_pixel.errors, atol=1e-3)
    assert row["metrics"]["rand_error"] == pytest.approx(min(sweep["errors"]))
    assert row["metrics"]["rand_error"] == pytest.approx(ref_rand.error, abs=2e-3)

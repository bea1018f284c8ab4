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

"""scripts/train_full_width.py, the prepared GPU run of the paper's width, end to end on a CPU at a tiny width."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

from monai_unet2015.bundle import unet2015_args_from_state_dict

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
EM = "unet2015_em_membranes"
TINY = [4, 8, 16, 32, 64]


def _script():
    spec = importlib.util.spec_from_file_location("train_full_width", REPO / "scripts" / "train_full_width.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_gpu_configs_are_the_paper_width():
    """train_gpu.json trains the paper's 64 ... 1024 (31 M parameters) with the weight EMA on."""
    for name in (EM, "unet2015_dic_hela"):
        root = REPO / "bundles" / name
        parser = ConfigParser()
        parser.read_config([str(root / "configs" / f) for f in ("inference.json", "train.json", "train_gpu.json")])
        parser["bundle_root"] = str(root)
        net = parser.get_parsed_content("network_def")
        assert tuple(net.features) == (64, 128, 256, 512, 1024)
        assert sum(p.numel() for p in net.parameters()) == pytest.approx(31.0e6, rel=0.01)
        assert parser.get_parsed_content("flags#ema_momentum") == 0.001


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside the clone")
def test_calibrate_train_choose_score_split(tmp_path, capsys):
    """Epochs fitted to the budget, the validation choice between final and EMA, test figures, parts that rejoin."""
    script = _script()
    out, runs = tmp_path / "out", tmp_path / "runs"
    before = sorted((REPO / "bundles" / EM / "runs").glob("*")) if (REPO / "bundles" / EM / "runs").is_dir() else []
    summary = script.main(["--bundles", "em", "--features", *map(str, TINY), "--iters_per_epoch", "3",
                           "--calibrate_iters", "3", "--minutes", "0.02", "--runs_dir", str(runs), "--out", str(out),
                           "--parts", "3"])["em"]
    # the budget is 1.08 s: at most one epoch of 3 iterations, at least one epoch
    assert summary["epochs"] == max(1, int(0.9 * 0.02 * 60 / (summary["seconds_per_iter"] * 3)))
    assert summary["chosen"] == min(summary["validation"], key=summary["validation"].get)
    for tta in ("tta_True", "tta_False"):
        assert 0.0 <= summary["test"][tta]["rand_error"] <= 1.0 and "pixel_error" in summary["test"][tta]
    # the run went to --runs_dir, the bundle's own runs/ is untouched
    assert (runs / EM / "full_width" / "checkpoints" / "checkpoint_final.pt").is_file()
    after = sorted((REPO / "bundles" / EM / "runs").glob("*")) if (REPO / "bundles" / EM / "runs").is_dir() else []
    assert after == before
    # three parts rejoin into the float16 weights of the chosen candidate, as the summary's sha256 says
    assert summary["files"] == [f"{EM}_full_width.pt.part{k}" for k in range(3)]
    joined = b"".join((out / f).read_bytes() for f in summary["files"])
    assert hashlib.sha256(joined).hexdigest() == summary["sha256"]
    (tmp_path / "w.pt").write_bytes(joined)
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    assert unet2015_args_from_state_dict(state)["features"] == TINY
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    ckpt = torch.load(runs / EM / "full_width" / "checkpoints" / "checkpoint_final.pt", weights_only=False)
    entry = {"final": "model", "ema": "ema_model"}[summary["chosen"]]
    assert torch.equal(state["final_conv.weight"], ckpt[entry]["final_conv.weight"].half())
    assert sorted(p.name for p in out.iterdir()) == summary["files"]  # the other candidate is gone
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"em": summary}


def test_bad_arguments_are_refused(tmp_path):
    script = _script()
    with pytest.raises(SystemExit, match="--minutes must be > 0"):
        script.main(["--minutes", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        script.main(["--bundles", "cells", "--out", str(tmp_path)])  # argparse names the choices

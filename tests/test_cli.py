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

"""``python -m monai_unet2015 segment`` runs a bundle's own inference: same outputs as ``monai.bundle run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image

from monai.bundle import run
from monai_unet2015.__main__ import DEFAULT_BUNDLE, SAMPLE, main
from monai_unet2015.networks.nets import UNet2015

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="2")


def _read(path: Path) -> np.ndarray:
    return tifffile.imread(path) if path.suffix == ".tif" else np.asarray(Image.open(path))


def test_cli_equals_the_em_bundle_on_its_sample(tmp_path):
    """The default command (EM bundle, its shipped weights, its sample) writes what the bundle writes."""
    cli = subprocess.run([sys.executable, "-m", "monai_unet2015", "segment", "--output", str(tmp_path / "cli")],
                         cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    bundle = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
         "--output_dir", str(tmp_path / "bundle")],
        cwd=DEFAULT_BUNDLE, env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert bundle.returncode == 0, bundle.stderr[-3000:]
    names = sorted(p.name for p in (tmp_path / "cli").iterdir())
    assert names == [f"isbi2012_test_00_{k}" for k in ("mask.png", "neurons.tif", "overlay.png", "prob.tif")]
    assert names == sorted(p.name for p in (tmp_path / "bundle").iterdir())
    prob = "isbi2012_test_00_prob.tif"
    prob_cli, prob_bundle = _read(tmp_path / "cli" / prob), _read(tmp_path / "bundle" / prob)
    assert np.abs(prob_cli - prob_bundle).max() <= 1e-6
    for name in set(names) - {prob}:
        np.testing.assert_array_equal(_read(tmp_path / "cli" / name), _read(tmp_path / "bundle" / name))
    # the EM bundle's choices: membrane probability (channel 0) masked at its threshold (inference.json's)
    threshold = json.loads((DEFAULT_BUNDLE / "configs" / "inference.json").read_text())["threshold"]
    np.testing.assert_array_equal(_read(tmp_path / "cli" / "isbi2012_test_00_mask.png") == 255, prob_cli >= threshold)
    membrane = float((prob_cli >= threshold).mean())
    assert 0.1 < membrane < 0.4  # a membrane map of an EM slice, not a random network's output
    summary = [line for line in cli.stdout.splitlines() if "Segmented 1 image" in line]
    assert summary and str((tmp_path / "cli").resolve()) in summary[0] and "wrote 4 files" in summary[0]
    # the sample the package ships is the bundle's sample
    assert _read(SAMPLE).tobytes() == _read(DEFAULT_BUNDLE / "sample" / "isbi2012_test_00.png").tobytes()


def test_cli_reads_the_width_of_a_bare_state_dict(tmp_path):
    """``--weights`` with a bare state dict of another width: the width comes from its tensors."""
    torch.manual_seed(0)
    features = [4, 8, 16, 32, 64]
    weights = tmp_path / "bare.pt"
    torch.save(UNet2015(features=features).state_dict(), weights)
    crop = tmp_path / "crop.png"
    Image.fromarray(_read(SAMPLE)[:150, :170]).save(crop)
    assert main(["segment", "--input", str(crop), "--output", str(tmp_path / "cli"), "--weights", str(weights),
                 "--device", "cpu"]) == 0
    run(config_file=str(DEFAULT_BUNDLE / "configs" / "inference.json"), bundle_root=str(DEFAULT_BUNDLE),
        dataset_dir=str(crop), output_dir=str(tmp_path / "bundle"), ckpt_path=str(weights), features=features)
    prob = _read(tmp_path / "cli" / "crop_prob.tif")
    assert prob.shape == (150, 170)
    assert np.abs(prob - _read(tmp_path / "bundle" / "crop_prob.tif")).max() <= 1e-6
    # hand-made reference: one pass over the [0, 1]-scaled image mirrored by the border (the EM bundle's
    # preprocessing), membrane channel 0, in MONAI's (x, y) indexing of images
    net = UNet2015(features=features).eval()
    net.load_state_dict(torch.load(weights, weights_only=True))
    x = _read(crop).astype(np.float32).T
    x = (x - x.min()) / (x.max() - x.min())
    b = net.border
    th, tw = net.input_size_for_output((170, 150))
    padded = np.pad(x, ((b, th - 170 - b), (b, tw - 150 - b)), mode="reflect")
    with torch.no_grad():
        ref = torch.softmax(net(torch.from_numpy(padded)[None, None]), 1)[0, 0, :170, :150].numpy().T
    np.testing.assert_allclose(prob, ref, atol=1e-5)

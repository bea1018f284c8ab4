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

"""The trained weights the bundles ship: they load into the configured network, segment the shipped samples,
and keep their figures on the test split of the real data (``../shared/data``: EM slices 22-24, cells frames 21
and 54), which neither training, nor the choice of the shipped checkpoint, nor the mask threshold saw.

The metrics written by ``evaluate.json`` are checked against the bars; the predictions written by
``inference.json`` on the same held-out images are checked again against references computed here
(scikit-image's adapted Rand error, a per-object SEG loop), independent of ``monai_unet2015.metrics``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from monai.bundle import run
from monai_unet2015.networks.nets import UNet2015

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
DATA = REPO.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside the clone")

EM, CELLS = "unet2015_em_membranes", "unet2015_dic_hela"
# bars for the shipped weights on the test split: cells, the SEG >= 0.78 (shipped: 0.888); EM, a regression
# bar for the weights of release 0.5.0 (shipped: 0.0534 / 0.0706 with TTA), which miss the 0.05 / 0.07
EM_BARS = {"rand_error": 0.08, "pixel_error": 0.10}
CELLS_BARS = {"iou": 0.80, "seg": 0.78}


def _config(name: str, file: str) -> dict:
    return json.loads((BUNDLES / name / "configs" / file).read_text())


def _released(name: str) -> bool:
    """Weights count as shipped once ``metadata.json`` reports their metrics (``eval_metrics``): a
    ``models/model.pt`` left by a training run in a working copy is not a release."""
    return bool(_config(name, "metadata.json")["eval_metrics"])


def _needs_release(name: str):
    return pytest.mark.skipif(
        not _released(name), reason=f"{name}: trained weights not released yet (metadata.json has no eval_metrics)"
    )


EM_RELEASED, CELLS_RELEASED = _needs_release(EM), _needs_release(CELLS)


def _evaluate(name: str, dataset_dir: Path, out: Path) -> dict[str, float]:
    """``evaluate.json`` merged over ``inference.json``, as the bundle README runs it; the saved metrics."""
    root = BUNDLES / name
    configs = [str(root / "configs" / "inference.json"), str(root / "configs" / "evaluate.json")]
    run(config_file=configs, bundle_root=str(root), output_dir=str(out), dataset_dir=str(dataset_dir))
    with open(out / "metrics.csv") as f:
        return {row[0]: float(row[1]) for row in csv.reader(f) if row}


@pytest.mark.parametrize("name", (pytest.param(EM, marks=EM_RELEASED), pytest.param(CELLS, marks=CELLS_RELEASED)))
def test_weights_match_the_configs(name):
    path = BUNDLES / name / "models" / "model.pt"
    assert path.is_file() and path.stat().st_size < 64 * 2**20
    features = _config(name, "inference.json")["features"]
    assert "features" not in _config(name, "train.json")  # train.json merges over inference.json: one width
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = UNet2015(features=features)
    net.load_state_dict(state, strict=True)  # fp16 tensors are cast to the network's float32
    assert all(torch.isfinite(v).all() for v in state.values())
    meta = _config(name, "metadata.json")
    # metadata reports every metric of evaluate.json (and its bars)
    counts = {f"{k}_cells" for k in ("reference", "predicted", "missed", "false", "split", "merged")}
    em = {"rand_error", "pixel_error", "rand_error_at_threshold", "pixel_error_at_threshold", "warping_error",
          "v_rand", "v_info", "neuron_rand_error"}
    assert set(meta["eval_metrics"]) == (em if name == EM else set(CELLS_BARS) | counts)


@pytest.mark.parametrize("name", (pytest.param(EM, marks=EM_RELEASED), pytest.param(CELLS, marks=CELLS_RELEASED)))
def test_shipped_sample_with_shipped_weights(name, tmp_path):
    """The bundle's own command on its own sample, with the shipped weights: a plausible segmentation."""
    root = BUNDLES / name
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
         "--output_dir", str(tmp_path)],
        cwd=root, env=dict(os.environ, OMP_NUM_THREADS="2"), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sample = next((root / "sample").iterdir())
    mask = np.asarray(Image.open(tmp_path / f"{sample.stem}_mask.png")) == 255
    assert (tmp_path / f"{sample.stem}_overlay.png").is_file()
    if name == EM:
        # membranes cover about a fifth of an ISBI slice (22 % of the labelled training pixels)
        assert 0.10 < mask.mean() < 0.35, mask.mean()
        # and form a connected network that splits the slice into many cells
        assert ndimage.label(~mask)[1] > 50
    else:
        import tifffile

        inst = tifffile.imread(tmp_path / f"{sample.stem}_instances.tif")
        assert 0.2 < mask.mean() < 0.8, mask.mean()
        sizes = np.bincount(inst.ravel())[1:]
        assert (sizes > 500).sum() >= 5  # a frame of this sequence holds about 10-20 cells


@EM_RELEASED
@needs_data
def test_em_weights_on_held_out_slices(tmp_path):
    root = BUNDLES / EM
    metrics = _evaluate(EM, DATA / "isbi2012" / "train", tmp_path / "eval")
    for key, bar in EM_BARS.items():
        assert metrics[key] <= bar, metrics
    # the same slices through inference.json (no test-time augmentation), scored here with independent
    # references at the bundle's mask threshold
    from skimage.metrics import adapted_rand_error

    threshold = _config(EM, "inference.json")["threshold"]

    test = _config(EM, "train.json")["test_indices"]
    assert test == _config(EM, "evaluate.json")["eval_indices"] == "$[22, 23, 24]"
    run(config_file=str(root / "configs" / "inference.json"), bundle_root=str(root), output_dir=str(tmp_path / "pred"),
        dataset_dir=str(DATA / "isbi2012" / "train" / "image"), image_glob="2[2-4].png", tta=False)
    import tifffile

    errors, pixel, neuron_errors = [], [], []
    for k in range(22, 25):
        label = np.asarray(Image.open(DATA / "isbi2012" / "train" / "label" / f"{k}.png")) > 127
        membrane = tifffile.imread(tmp_path / "pred" / f"{k}_prob.tif")
        cells = membrane < threshold
        pixel.append(np.mean(cells != label))
        errors.append(adapted_rand_error(ndimage.label(label)[0], ndimage.label(cells)[0])[0])
        neurons = tifffile.imread(tmp_path / "pred" / f"{k}_neurons.tif")
        assert neurons.dtype == np.uint16 and neurons.min() > 0  # every pixel belongs to a neuron
        neuron_errors.append(adapted_rand_error(ndimage.label(label)[0], neurons.astype(np.int64))[0])
    assert np.mean(pixel) <= EM_BARS["pixel_error"], pixel
    assert np.mean(errors) <= 0.15, errors  # one fixed threshold, per-slice mean: looser than the pooled best
    # the neuron instances are no worse than the membrane map, by the bundle's metric and by scikit-image's
    assert metrics["neuron_rand_error"] <= metrics["rand_error"], metrics
    assert np.mean(neuron_errors) <= np.mean(errors), (neuron_errors, errors)


def _seg_reference(pred: np.ndarray, ref: np.ndarray) -> float:
    """SEG of the Cell Tracking Challenge, one object at a time: Jaccard of each reference cell with the
    predicted cell covering more than half of it, 0 when there is none; mean over reference cells."""
    scores = []
    for r in np.unique(ref)[1:]:
        obj = ref == r
        ids, counts = np.unique(pred[obj], return_counts=True)
        best = ids[np.argmax(counts)]
        if best == 0 or counts.max() * 2 <= obj.sum():
            scores.append(0.0)
            continue
        p = pred == best
        scores.append((obj & p).sum() / (obj | p).sum())
    return float(np.mean(scores))


@CELLS_RELEASED
@needs_data
def test_cells_weights_on_held_out_frames(tmp_path):
    import tifffile

    root = BUNDLES / CELLS
    metrics = _evaluate(CELLS, DATA / "dic-hela", tmp_path / "eval")
    for key, bar in CELLS_BARS.items():
        assert metrics[key] >= bar, metrics
    # the instances are cells, not fragments: at most 1.3 predicted objects per reference cell (issue bar)
    assert metrics["reference_cells"] == 24 and metrics["predicted_cells"] <= 1.3 * metrics["reference_cells"], metrics
    assert metrics["missed_cells"] + metrics["merged_cells"] + metrics["split_cells"] <= 0.25 * 24, metrics
    # inference.json on the held-out frames, scored here
    frames = _config(CELLS, "train.json")["test_frames"]
    assert frames == _config(CELLS, "evaluate.json")["eval_frames"] == [21, 54]
    images = tmp_path / "images"
    images.mkdir()
    for t in frames:
        (images / f"t{t:03d}.tif").symlink_to(DATA / "dic-hela" / "01" / f"t{t:03d}.tif")
    run(config_file=str(root / "configs" / "inference.json"), bundle_root=str(root), output_dir=str(tmp_path / "pred"),
        dataset_dir=str(images), tta=False)
    segs, ious = [], []
    for t in frames:
        ref = tifffile.imread(DATA / "dic-hela" / "01_GT" / "SEG" / f"man_seg{t:03d}.tif")
        pred = tifffile.imread(tmp_path / "pred" / f"t{t:03d}_instances.tif")
        segs.append(_seg_reference(pred, ref))
        ious.append(((pred > 0) & (ref > 0)).sum() / ((pred > 0) | (ref > 0)).sum())
    assert np.mean(ious) >= CELLS_BARS["iou"], ious
    assert np.mean(segs) >= CELLS_BARS["seg"], segs

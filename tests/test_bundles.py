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

"""The MONAI bundles in ``bundles/``: every config parses, inference on the shipped sample, a few training
iterations with resume, evaluation, metadata / network checks, TorchScript export and the 2-process gloo run.

Everything runs on copies of the bundles in ``tmp_path`` with a tiny network width (random weights written
there, never into the repository) and small crops of the real data.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Events
from PIL import Image

from monai.bundle import ConfigParser, ckpt_export, run, verify_metadata, verify_net_in_out
from monai.transforms import LoadImage
from monai_unet2015.bundle import BundleInputError, latest_checkpoint, sha256sum
from monai_unet2015.metrics import foreground_iou, pixel_error, rand_error, seg_measure
from monai_unet2015.networks.nets import UNet2015
from monai_unet2015.transforms import UNetWeightMapd

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
SHARED = REPO.parent / "shared"
DATA = SHARED / "data"
SCHEMA = SHARED / "schemas" / "meta_schema_20240725.json"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside the clone")
needs_schema = pytest.mark.skipif(not SCHEMA.is_file(), reason="../shared/schemas/meta_schema_20240725.json is missing")

EM, CELLS = "unet2015_em_membranes", "unet2015_dic_hela"
NAMES = (EM, CELLS)
CONFIGS = ("inference.json", "train.json", "train_cpu.json", "train_gpu.json", "evaluate.json", "multi_gpu_train.json",
           "metadata.json", "inference_large.json")
TINY = [4, 8, 16, 32, 64]  # depth 5 like the paper (valid sizes 16 n + 124), tiny width
CROP = 160
GT_FRAMES = (2, 5, 21, 31, 33, 34, 39, 54, 67)


def _train_files(root: Path, *extra: str) -> list[str]:
    """train.json and what follows it, merged over the bundle's common config inference.json."""
    return [str(root / "configs" / f) for f in ("inference.json", "train.json", *extra)]


def _tiny_copy(name: str, dest: Path) -> Path:
    """A copy of a bundle with the tiny width in every config and random weights in models/model.pt."""
    root = dest / name
    shutil.copytree(BUNDLES / name, root, ignore=shutil.ignore_patterns("runs", "eval", "models", "__pycache__"))
    # inference.json, the common config of the merged configs, and the standalone inference_large.json
    for f in ("inference.json", "inference_large.json"):
        path = root / "configs" / f
        cfg = json.loads(path.read_text())
        cfg["features"] = TINY
        path.write_text(json.dumps(cfg, indent=4))
    (root / "models").mkdir()
    torch.manual_seed(0)
    torch.save(UNet2015(features=TINY).state_dict(), root / "models" / "model.pt")
    return root


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Crops of real slices in the two dataset layouts: ISBI 2012 slices and a Cell Tracking Challenge sequence."""
    if not DATA.is_dir():
        pytest.skip("../shared/data is not beside the clone")
    import tifffile

    root = tmp_path_factory.mktemp("data")
    isbi = root / "isbi2012"
    for sub in ("image", "label"):
        (isbi / sub).mkdir(parents=True)
        for k in (0, 1, 20):
            arr = np.asarray(Image.open(DATA / "isbi2012" / "train" / sub / f"{k:02d}.png"))
            Image.fromarray(arr[:CROP, :CROP]).save(isbi / sub / f"{k:02d}.png")
    ctc = root / "dic-hela"
    (ctc / "01").mkdir(parents=True)
    (ctc / "01_GT" / "SEG").mkdir(parents=True)
    for t in (2, 54):
        img = tifffile.imread(DATA / "dic-hela" / "01" / f"t{t:03d}.tif")
        lab = tifffile.imread(DATA / "dic-hela" / "01_GT" / "SEG" / f"man_seg{t:03d}.tif")
        tifffile.imwrite(ctc / "01" / f"t{t:03d}.tif", img[200 : 200 + CROP, 150 : 150 + CROP])
        tifffile.imwrite(ctc / "01_GT" / "SEG" / f"man_seg{t:03d}.tif", lab[200 : 200 + CROP, 150 : 150 + CROP])
    return {"isbi": isbi, "ctc": ctc}


def _data_args(name: str, data: dict) -> dict:
    if name == EM:
        return {"dataset_dir": str(data["isbi"]), "train_indices": [0, 1], "val_indices": [20]}
    return {"dataset_dir": str(data["ctc"]), "train_frames": [2], "val_frames": [54]}


def _train_args(name: str, data: dict, root: Path) -> dict:
    return {
        "bundle_root": str(root),
        "epochs": 1,
        "num_iters_per_epoch": 2,
        "val_interval": 1,
        "train_roi_size": 188,
        "num_workers": 0,
        "run_name": "test",
        **_data_args(name, data),
    }


# ----------------------------------------------------------------------------------------------- config parsing
@pytest.mark.parametrize("name", NAMES)
def test_layout(name):
    root = BUNDLES / name
    for f in CONFIGS + ("logging.conf",):
        assert (root / "configs" / f).is_file(), f
    for f in ("LICENSE", "docs/README.md", "docs/data_license.txt"):
        assert (root / f).is_file(), f
    samples = sorted((root / "sample").iterdir())
    assert len(samples) == 1 and samples[0].stat().st_size < 400_000
    if name == CELLS:  # the sample is not one of the gold-truth frames
        assert int(samples[0].stem[-3:]) not in GT_FRAMES
    weights = root / "models" / "model.pt"  # the shipped weights, checked in test_bundle_weights.py
    assert not weights.exists() or weights.stat().st_size > 0
    for f in CONFIGS:
        json.loads((root / "configs" / f).read_text())  # valid JSON


@pytest.mark.parametrize("name", NAMES)
def test_configs_parse(name):
    """The components of every config resolve (without data) and share one definition of the network."""
    root = BUNDLES / name
    for files, ids in (
        (["inference.json"], ["network_def", "inferer", "preprocessing", "postprocessing", "handlers"]),
        (
            ["inference.json", "train.json"],
            ["network_def", "loss", "train#augmentation", "train#preprocessing", "train#trainer",
             "validate#inferer", "validate#postprocessing", "validate#key_metric", "validate#additional_metrics"],
        ),
        (["inference.json", "evaluate.json"], ["preprocessing", "postprocessing", "metrics", "handlers"]),
        (["inference.json", "train.json", "train_cpu.json"], ["optimizer", "loss", "train#augmentation"]),
        (["inference.json", "train.json", "train_gpu.json"], ["optimizer", "loss", "train#augmentation", "ema"]),
        (["inference_large.json"], ["network_def", "inferer", "flags", "job#attributes"]),  # standalone
    ):
        parser = ConfigParser()
        parser.read_config([str(root / "configs" / f) for f in files])
        parser.read_meta(str(root / "configs" / "metadata.json"))
        parser["bundle_root"] = str(root)
        parser["features"] = TINY
        for i in ids:
            assert parser.get_parsed_content(i) is not None, (files, i)
        net = parser.get_parsed_content("network_def")
        assert isinstance(net, UNet2015) and net.depth == 5 and tuple(net.features) == tuple(TINY)
        assert parser.get("_meta_#network_data_format#inputs#image#num_channels") == 1
    # the TTA switch swaps the inferer
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser["tta"] = True
    assert type(parser.get_parsed_content("inferer")).__name__ == "DihedralTTAInferer"
    # the multi-GPU overrides point at existing ids of train.json (handlers by name)
    train = ConfigParser()
    train.read_config(_train_files(root))
    multi = json.loads((root / "configs" / "multi_gpu_train.json").read_text())
    targets = {
        "train#handlers#stats": "StatsHandler", "train#handlers#tensorboard": "TensorBoardStatsHandler",
        "validate#handlers#stats": "StatsHandler", "validate#handlers#tensorboard": "TensorBoardStatsHandler",
        "validate#handlers#best_model": "CheckpointSaver",
    }
    for key in multi:
        if "#" in key:
            parent = key.rsplit("#", 1)[0]
            assert parent in train, key
            if key.endswith("#_disabled_"):
                assert train[parent]["_target_"] == targets[parent], key
    assert train["train#handlers#validation"]["_target_"] == "ValidationHandler"
    assert all(k.lstrip("+") != "imports" or k.startswith("+") for k in multi)  # adds to the common imports


@needs_data
def test_cells_datalist_split():
    """Validation and test frames never appear in training, silver truth near them neither; evaluate.json scores
    the test frames."""
    parser = ConfigParser()
    parser.read_config(_train_files(BUNDLES / CELLS))
    parser["dataset_dir"] = str(DATA / "dic-hela")
    train = parser.get_parsed_content("train#datalist")
    # frame 67's gold truth annotates 3 of its 17 cells: neither a training nor a validation label
    assert sorted(it["frame"] for it in train) == [2, 5, 31, 33, 34]
    assert all("01_GT" in it["label"] for it in train)
    assert [it["frame"] for it in parser.get_parsed_content("validate#datalist")] == [39]
    assert parser.get_parsed_content("test_frames") == [21, 54]
    assert json.loads((BUNDLES / CELLS / "configs" / "evaluate.json").read_text())["eval_frames"] == [21, 54]
    parser = ConfigParser()
    parser.read_config(_train_files(BUNDLES / CELLS))
    parser["dataset_dir"] = str(DATA / "dic-hela")
    parser["use_silver_truth"] = True
    frames = {it["frame"]: it["label"] for it in parser.get_parsed_content("train#datalist")}
    assert all(min(abs(t - v) for v in (21, 39, 54)) > 5 for t in frames if t not in (34,))
    assert "01_GT" in frames[34] and "01_GT" in frames[5] and "01_ST" in frames[10]
    assert {15, 27, 45, 48, 60} <= set(frames) and not {16, 26, 40, 49, 59} & set(frames)
    assert "01_ST" in frames[67]  # the silver truth of the partially annotated frame
    assert len(frames) == 52


def test_em_split():
    """Training, validation and test slices are disjoint; evaluate.json scores the test slices."""
    parser = ConfigParser()
    parser.read_config(_train_files(BUNDLES / EM))
    train, val, test = (set(parser.get_parsed_content(k)) for k in ("train_indices", "val_indices", "test_indices"))
    assert train == set(range(20)) and val == {20, 21} and test == {22, 23, 24}
    evaluate = ConfigParser()
    evaluate.read_config(str(BUNDLES / EM / "configs" / "evaluate.json"))
    assert set(evaluate.get_parsed_content("eval_indices")) == test


# ------------------------------------------------------------------------------- class conventions, end to end
@needs_data
def test_em_validation_pipeline_on_ground_truth():
    """Logits that encode the label give zero Rand and pixel error through the configured postprocessing."""
    parser = ConfigParser()
    parser.read_config(_train_files(BUNDLES / EM))
    parser["dataset_dir"] = str(DATA / "isbi2012" / "train")
    pre = parser.get_parsed_content("validate#preprocessing")
    post = parser.get_parsed_content("validate#postprocessing")
    d = pre(parser.get_parsed_content("validate#datalist")[0])
    label = d["label"]
    assert set(torch.unique(label).tolist()) == {0.0, 1.0}
    png = np.asarray(Image.open(DATA / "isbi2012" / "train" / "label" / "20.png"))
    # class 1 = cell interior = 255 in the PNG, and the loaded orientation is (W, H): transposed
    np.testing.assert_array_equal(label[0].numpy().T, (png == 255).astype(np.float32))
    d["pred"] = torch.cat([1 - label, label]) * 8.0 - 4.0
    out = post(d)
    assert out["pred"].shape == label.shape
    assert rand_error(out["pred"][None], label[None], polarity="cell").error == 0.0
    assert pixel_error(out["pred"][None], label[None], polarity="cell").error == 0.0


@needs_data
def test_cells_validation_pipeline_on_ground_truth():
    """The carved training target, through the configured postprocessing (argmax + connected components),
    recovers the reference cells: the class convention and the instance step agree with the metrics."""
    parser = ConfigParser()
    parser.read_config(_train_files(BUNDLES / CELLS))
    parser["dataset_dir"] = str(DATA / "dic-hela")
    pre = parser.get_parsed_content("validate#preprocessing")
    post = parser.get_parsed_content("validate#postprocessing")
    d = pre(parser.get_parsed_content("validate#datalist")[0])
    ref = d["label"]
    target = UNetWeightMapd("label")({"label": ref})["label"]
    d["pred"] = torch.cat([1 - target, target]) * 8.0 - 4.0
    out = post(d)
    pred = out["pred"]
    assert pred.shape == ref.shape
    assert int(pred.max()) >= len(torch.unique(ref)) - 1 - 1  # about one instance per cell
    seg = seg_measure(pred[None], ref[None]).seg
    iou = float(foreground_iou(pred[None], ref[None]).mean())
    assert seg > 0.85 and iou > 0.9, (seg, iou)


# ------------------------------------------------------------------------------------------ inference on sample
def _check_outputs(name: str, out_dir: Path, sample: Path) -> None:
    import tifffile

    stem = sample.stem
    image = np.asarray(Image.open(sample)) if sample.suffix == ".png" else tifffile.imread(sample)
    prob = tifffile.imread(out_dir / f"{stem}_prob.tif")
    mask = np.asarray(Image.open(out_dir / f"{stem}_mask.png"))
    overlay = np.asarray(Image.open(out_dir / f"{stem}_overlay.png"))
    assert prob.shape == mask.shape == image.shape and prob.dtype == np.float32
    assert overlay.shape == (*image.shape, 3) and overlay.dtype == np.uint8
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    assert set(np.unique(mask)) <= {0, 255}
    threshold = json.loads((BUNDLES / name / "configs" / "inference.json").read_text())["threshold"]
    np.testing.assert_array_equal(prob >= threshold, mask == 255)  # same orientation; AsDiscrete keeps p >= threshold
    # the overlay is the image (in its own orientation) where the mask is empty
    bg = mask == 0
    if bg.sum() > 100:
        grey = overlay[..., 0].astype(float)
        assert np.corrcoef(grey[bg], image[bg].astype(float))[0, 1] > 0.99
    if name == CELLS:
        inst = tifffile.imread(out_dir / f"{stem}_instances.tif")
        assert inst.shape == image.shape and inst.dtype == np.uint16
        # the watershed's instances: ids 1..N, none below min_size, inside the (hole-filled) cell mask
        from scipy import ndimage as ndi

        cfg = json.loads((BUNDLES / name / "configs" / "inference.json").read_text())
        ids, sizes = np.unique(inst, return_counts=True)
        assert ids.tolist() == list(range(len(ids))) if ids[0] == 0 else list(range(1, len(ids) + 1))
        assert (sizes[ids > 0] >= cfg["min_size"]).all()
        assert not ((inst > 0) & ~ndi.binary_fill_holes(mask == 255)).any()


@pytest.mark.parametrize("name", NAMES)
def test_inference_on_shipped_sample_cli(name, tmp_path):
    """``python -m monai.bundle run --config_file configs/inference.json`` from the bundle folder."""
    root = _tiny_copy(name, tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sample = next((root / "sample").iterdir())
    _check_outputs(name, root / "eval", sample)


def test_inference_bundle_root_tta_and_missing_weights(tmp_path):
    """``--bundle_root`` from elsewhere, with TTA and small tiles (the stitched result equals one pass)."""
    root = _tiny_copy(EM, tmp_path)
    config = str(root / "configs" / "inference.json")
    run(config_file=config, bundle_root=str(root), output_dir=str(tmp_path / "plain"))
    run(config_file=config, bundle_root=str(root), output_dir=str(tmp_path / "tiles"), roi_size=100)
    run(config_file=config, bundle_root=str(root), output_dir=str(tmp_path / "tta"), tta=True, tta_group="rot90")
    import tifffile

    sample = next((root / "sample").iterdir())
    _check_outputs(EM, tmp_path / "tta", sample)
    plain = tifffile.imread(tmp_path / "plain" / f"{sample.stem}_prob.tif")
    tiles = tifffile.imread(tmp_path / "tiles" / f"{sample.stem}_prob.tif")
    tta = tifffile.imread(tmp_path / "tta" / f"{sample.stem}_prob.tif")
    np.testing.assert_allclose(tiles, plain, atol=1e-5)
    assert np.abs(tta - plain).max() > 1e-4  # the augmented passes change the result
    # hand-made reference for the membrane probability: softmax channel 0 of one pass over the mirrored image
    net = UNet2015(features=TINY)
    net.load_state_dict(torch.load(root / "models" / "model.pt", weights_only=True))
    img = LoadImage(ensure_channel_first=True, image_only=True)(str(sample)).as_tensor()
    img = (img - img.min()) / (img.max() - img.min())
    size = net.input_size_for_output(512)[0]  # 700: pad by the border (92) before, the rest after
    lo, hi = net.border, size - 512 - net.border
    x = torch.nn.functional.pad(img[None], (lo, hi, lo, hi), mode="reflect")
    with torch.no_grad():
        ref = torch.softmax(net.eval()(x), 1)[0, 0, :512, :512].numpy().T
    np.testing.assert_allclose(plain, ref, atol=1e-4)
    # without weights the run fails with the path in the message
    (root / "models" / "model.pt").unlink()
    with pytest.raises(RuntimeError) as info:
        run(config_file=config, bundle_root=str(root), output_dir=str(tmp_path / "none"))
    cause = info.value
    while cause.__cause__ is not None:
        cause = cause.__cause__
    assert isinstance(cause, BundleInputError) and "model.pt" in str(cause) and "does not exist" in str(cause)


# ------------------------------------------------------------------------------------ training and evaluation
@pytest.mark.parametrize("name", NAMES)
def test_train_resume_and_evaluate(name, tmp_path, tiny_data):
    root = _tiny_copy(name, tmp_path)
    shipped = root / "models" / "model.pt"
    shipped_sha = sha256sum(shipped)
    config = _train_files(root)
    args = _train_args(name, tiny_data, root)
    run(config_file=config, **args)
    run_dir = root / "runs" / "test"
    ckpts = run_dir / "checkpoints"
    assert (run_dir / "model.pt").is_file()  # best key metric, in the run's own folder
    assert (ckpts / "checkpoint_epoch=1.pt").is_file() and (ckpts / "checkpoint_final.pt").is_file()
    assert list(run_dir.glob("events.out.tfevents.*"))
    state = torch.load(ckpts / "checkpoint_epoch=1.pt", weights_only=False)
    assert set(state) == {"model", "optimizer", "trainer", "lr_scheduler"} and state["trainer"]["iteration"] == 2
    assert state["optimizer"]["param_groups"][0]["momentum"] == 0.99
    # the cosine schedule of a 1-epoch run ends at final_lr_ratio (0.01) times the rate 0.01
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    # a resumed run continues from the saved epoch and iteration, along the cosine of the epochs and from the
    # learning rate given now: 1e-3 * (0.01 + 0.99 * (1 + cos(pi / 2)) / 2) when it starts epoch 2 of 2 ...
    parser = ConfigParser()
    parser.read_config(config)
    parser.update({**args, "epochs": 2, "resume": True, "learning_rate": 0.001})
    rates, optimizer = [], parser.get_parsed_content("optimizer")
    parser.get_parsed_content("train#trainer").add_event_handler(
        Events.ITERATION_STARTED, lambda engine: rates.append(optimizer.param_groups[0]["lr"])
    )
    parser.get_parsed_content("initialize")
    parser.get_parsed_content("run")
    assert rates == pytest.approx([0.000505] * 2)
    state = torch.load(ckpts / "checkpoint_epoch=2.pt", weights_only=False)
    assert state["trainer"]["iteration"] == 4 and state["trainer"]["max_epochs"] == 2
    # ... and 1e-3 * 0.01 after it
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-5)
    assert state["lr_scheduler"]["base_lrs"] == [0.001] and state["lr_scheduler"]["last_epoch"] == 2
    assert latest_checkpoint(ckpts) == str(ckpts / "checkpoint_final.pt")  # what the next resume loads
    assert sha256sum(shipped) == shipped_sha  # the shipped weights are never touched by training
    weights = torch.load(run_dir / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in weights)
    # evaluate.json (merged over inference.json) writes the paper's metrics to a file
    run(
        config_file=[str(root / "configs" / "inference.json"), str(root / "configs" / "evaluate.json")],
        bundle_root=str(root), output_dir=str(tmp_path / "metrics"), **{
            k.replace("val_", "eval_"): v for k, v in _data_args(name, tiny_data).items()
            if k not in ("train_indices", "train_frames")
        },
    )
    with open(tmp_path / "metrics" / "metrics.csv") as f:
        metrics = {row[0]: row[1] for row in csv.reader(f) if row}
    counts = {f"{k}_cells" for k in ("reference", "predicted", "missed", "false", "split", "merged")}
    scores = {"rand_error", "pixel_error", "warping_error", "v_rand", "v_info", "neuron_rand_error",
              "rand_error_at_threshold", "pixel_error_at_threshold"} if name == EM else {
        "seg", "iou"}
    assert set(metrics) == (scores if name == EM else scores | counts)
    assert all(0.0 <= float(metrics[k]) <= 1.0 for k in scores)
    if name != EM:  # whole numbers of objects, the reference ones as many as the label maps hold
        assert all(float(metrics[k]).is_integer() and float(metrics[k]) >= 0 for k in counts)
        assert float(metrics["reference_cells"]) > 0


@pytest.mark.parametrize("name", NAMES)
def test_train_from_trained_weights(name, tmp_path, tiny_data):
    """``--init_ckpt``: a training starts from the given weights (float16, as a bundle ships them), not from the
    random initialisation; with a learning rate of 0 the final checkpoint holds exactly those weights."""
    root = _tiny_copy(name, tmp_path)
    torch.manual_seed(123)
    trained = {k: v.half() for k, v in UNet2015(features=TINY).state_dict().items()}
    init = tmp_path / "trained.pt"
    torch.save(trained, init)
    args = {**_train_args(name, tiny_data, root), "learning_rate": 0.0}
    run(config_file=_train_files(root), init_ckpt=str(init), **args)
    final = torch.load(root / "runs" / "test" / "checkpoints" / "checkpoint_final.pt", weights_only=False)["model"]
    assert set(final) == set(trained)
    for k, v in trained.items():
        assert torch.equal(final[k], v.float()), k
    # a network of another width is refused before any work, naming the option and the width that fits
    torch.save(UNet2015(features=[2, 4, 8, 16, 32]).state_dict(), init)
    with pytest.raises(RuntimeError) as info:
        run(config_file=_train_files(root), init_ckpt=str(init), **{**args, "run_name": "wide"})
    cause = info.value
    while cause.__cause__ is not None:
        cause = cause.__cause__
    assert isinstance(cause, BundleInputError)
    assert "--init_ckpt" in str(cause) and "[2, 4, 8, 16, 32]" in str(cause)
    assert not (root / "runs" / "wide" / "checkpoints").exists()


@pytest.mark.parametrize("name", NAMES)
def test_weight_ema_is_saved_resumed_and_exported(name, tmp_path, tiny_data):
    """``--ema_momentum m``: after every iteration ``ema = (1 - m) ema + m w`` from the weights the training starts
    with; the checkpoints hold it as ``ema_model``, a resumed run continues it, ``export_weights(entry=...)``
    ships it."""
    from monai_unet2015.bundle import export_weights

    root = _tiny_copy(name, tmp_path)
    config = _train_files(root)
    args = {**_train_args(name, tiny_data, root), "ema_momentum": 0.25}

    def train(**extra):
        parser = ConfigParser()
        parser.read_config(config)
        parser.update({**args, **extra})
        seen, net = [], parser.get_parsed_content("network")
        trainer = parser.get_parsed_content("train#trainer")
        snap = lambda engine: seen.append({k: v.detach().clone() for k, v in net.state_dict().items()})  # noqa: E731
        trainer.add_event_handler(Events.STARTED, snap)  # the weights before the first iteration
        parser.get_parsed_content("initialize")
        trainer.add_event_handler(Events.ITERATION_COMPLETED, snap)
        parser.get_parsed_content("run")
        return seen

    def expected(start, seen):
        ema = {k: v.double() for k, v in start.items()}
        for w in seen[1:]:
            ema = {k: 0.75 * ema[k] + 0.25 * w[k].double() for k in ema}
        return ema

    seen = train()
    ckpts = root / "runs" / "test" / "checkpoints"
    state = torch.load(ckpts / "checkpoint_final.pt", weights_only=False)
    assert set(state) == {"model", "optimizer", "trainer", "lr_scheduler", "ema_model"}
    want = expected(seen[0], seen)
    assert len(seen) == 3
    for k, v in state["ema_model"].items():
        torch.testing.assert_close(v.double(), want[k], atol=1e-6, rtol=1e-5)
    assert not torch.equal(state["ema_model"]["final_conv.weight"], state["model"]["final_conv.weight"])
    # resumed for a second epoch: the average goes on from the saved one
    seen2 = train(epochs=2, resume=True)
    state2 = torch.load(ckpts / "checkpoint_epoch=2.pt", weights_only=False)
    want2 = expected({k: v.double() for k, v in state["ema_model"].items()}, seen2)
    for k, v in state2["ema_model"].items():
        torch.testing.assert_close(v.double(), want2[k], atol=1e-6, rtol=1e-5)
    # shipped as float16 from the checkpoint's average; a checkpoint without one is refused by name
    export_weights(ckpts / "checkpoint_epoch=2.pt", tmp_path / "ema.pt", entry="ema_model")
    shipped = torch.load(tmp_path / "ema.pt", weights_only=True)
    assert torch.equal(shipped["final_conv.weight"], state2["ema_model"]["final_conv.weight"].half())
    torch.save({"model": state2["model"]}, tmp_path / "plain.pt")
    with pytest.raises(BundleInputError, match="no 'ema_model' entry"):
        export_weights(tmp_path / "plain.pt", tmp_path / "x.pt", entry="ema_model")
    # a momentum outside (0, 1) is refused, naming the option, before anything is written
    bad = ConfigParser()
    bad.read_config(config)
    bad.update({**args, "ema_momentum": 1.5, "run_name": "bad"})
    bad.get_parsed_content("initialize")
    with pytest.raises(RuntimeError) as info:
        bad.get_parsed_content("run")  # in the order `monai.bundle run` takes it
    cause = info.value
    while cause.__cause__ is not None:
        cause = cause.__cause__
    assert isinstance(cause, BundleInputError) and "--ema_momentum got 1.5" in str(cause)
    assert not (root / "runs" / "bad").exists()  # refused before the run folder is made


def test_em_weight_map_option(tiny_data):
    """``use_weight_map: true`` adds the weight map to the EM training batches and to the loss."""
    parser = ConfigParser()
    parser.read_config(_train_files(BUNDLES / EM))
    parser.update(
        {"dataset_dir": str(tiny_data["isbi"]), "train_indices": [0], "use_weight_map": True, "train_roi_size": 188}
    )
    d = parser.get_parsed_content("train#preprocessing")(parser.get_parsed_content("train#datalist")[0])
    assert d["weight"].shape == d["label"].shape == d["image"].shape == (1, 188, 188)
    assert float(d["weight"].max()) > 1.0
    assert parser.get_parsed_content("train#trainer#weight_key") == "weight"  # the trainer hands it to the loss


# --------------------------------------------------------------------------- metadata, network, TorchScript
@needs_schema
@pytest.mark.parametrize("name", NAMES)
def test_verify_metadata(name):
    verify_metadata(meta_file=str(BUNDLES / name / "configs" / "metadata.json"), filepath=str(SCHEMA))


@pytest.mark.parametrize("name", NAMES)
def test_verify_net_in_out_and_export(name, tmp_path):
    root = _tiny_copy(name, tmp_path)
    meta, config = str(root / "configs" / "metadata.json"), str(root / "configs" / "inference.json")
    for n in (1, 2):
        verify_net_in_out(net_id="network_def", meta_file=meta, config_file=config, device="cpu", n=n)
    ts = root / "models" / "model.ts"
    ckpt_export(net_id="network_def", filepath=str(ts), ckpt_file=str(root / "models" / "model.pt"),
                meta_file=meta, config_file=config)
    scripted = torch.jit.load(str(ts))
    net = UNet2015(features=TINY)
    net.load_state_dict(torch.load(root / "models" / "model.pt", weights_only=True))
    x = torch.rand(1, 1, 204, 188)
    with torch.no_grad():
        torch.testing.assert_close(scripted.eval()(x), net.eval()(x))
    out = scripted(x)
    assert out.shape == (1, 2, 20, 4)  # 16 n - 12 for n = 2, 1


# ---------------------------------------------------------------------------------------- 2 processes, gloo
@needs_data
def test_multi_gpu_train_gloo_two_processes(tmp_path, tiny_data):
    root = _tiny_copy(EM, tmp_path)
    shipped_sha = sha256sum(root / "models" / "model.pt")
    args = _train_args(EM, tiny_data, root)
    args["val_indices"] = [0, 20]  # one validation image per process
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           "-m", "monai.bundle", "run", "--config_file",
           "['configs/inference.json','configs/train.json','configs/multi_gpu_train.json']"]
    for k, v in {**args, "epochs": 2}.items():
        cmd += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    state = torch.load(root / "runs" / "test" / "checkpoints" / "checkpoint_final.pt", weights_only=False)
    assert state["trainer"]["iteration"] == 4 and state["trainer"]["max_epochs"] == 2
    assert sha256sum(root / "models" / "model.pt") == shipped_sha
    weights = torch.load(root / "runs" / "test" / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in weights)  # saved unwrapped, loadable without DDP
    UNet2015(features=TINY).load_state_dict(weights)
    # rank 0 logs and saves; validation ran on both ranks and was gathered
    assert "val_rand_error" in proc.stdout + proc.stderr
    assert len(list((root / "runs" / "test").glob("events.out.tfevents.*"))) >= 1

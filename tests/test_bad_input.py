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

"""Bad input and the traps of issue 12, one test per row, through the real entry points.

Every test runs ``python -m monai.bundle run`` or ``python -m monai_unet2015 segment`` in a subprocess on a copy
of a bundle (tiny width, random weights) and asserts the exit code, the message a user reads last, and that
nothing was written or changed where nothing should be.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from monai_unet2015.bundle import sha256sum
from monai_unet2015.networks.nets import UNet2015

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
DATA = REPO.parent / "shared" / "data"
EM, CELLS = "unet2015_em_membranes", "unet2015_dic_hela"
TINY = [4, 8, 16, 32, 64]
ENV = {k: v for k, v in os.environ.items() if k != "MONAI_UNET2015_TRACEBACK"} | {"OMP_NUM_THREADS": "2"}
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside the clone")

#: the boolean keys of each config, as the bundles' ``flags`` read them (``amp`` and ``channels_last`` also take
#: ``auto``, their default: see test_amp_and_channels_last_take_auto)
FLAGS = {
    (EM, "inference"): ["tta", "volume_as_slices"],
    (EM, "evaluate"): ["tta", "volume_as_slices"],
    (EM, "train"): ["tta", "volume_as_slices", "use_weight_map", "resume", "amp", "channels_last"],  # + inference's
    (CELLS, "inference"): ["tta", "volume_as_slices", "ctc_result"],
    (CELLS, "evaluate"): ["tta", "volume_as_slices", "ctc_result"],
    (CELLS, "train"): ["tta", "volume_as_slices", "ctc_result", "use_weight_map", "resume", "amp", "channels_last",
                       "use_silver_truth"],
    (EM, "inference_large"): ["tta", "write_mask", "write_instances", "progress"],
    (CELLS, "inference_large"): ["tta", "write_mask", "write_instances", "progress"],
}
#: the flags that are no booleans: read there so that a bad value is refused before a run folder is made
OTHER_FLAGS = {(EM, "train"): {"ema_momentum": None}, (CELLS, "train"): {"ema_momentum": None}}
SPELLINGS = [("false", False), ("True", True), ("0", False), ("yes", True), ("no", False), ("1", True),
             ("FALSE", False), ("on", True), ("False", False), ("true", True)]


def _copy(name: str, dest: Path, weights: bool = True) -> Path:
    root = dest / name
    shutil.copytree(BUNDLES / name, root, ignore=shutil.ignore_patterns("runs", "eval", "models", "__pycache__"))
    for f in ("inference.json", "inference_large.json"):  # the common config, and the standalone one
        cfg = json.loads((root / "configs" / f).read_text())
        cfg["features"] = TINY
        (root / "configs" / f).write_text(json.dumps(cfg, indent=4))
    (root / "models").mkdir()
    if weights:
        torch.manual_seed(0)
        torch.save(UNet2015(features=TINY).state_dict(), root / "models" / "model.pt")
    return root


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    dest = tmp_path_factory.mktemp("bundles")
    return {name: _copy(name, dest) for name in (EM, CELLS)}


def _configs(kind: str) -> str:
    files = {"inference": ["inference"], "evaluate": ["inference", "evaluate"], "train": ["inference", "train"],
             "inference_large": ["inference_large"]}[kind]
    return "[" + ",".join(f"'configs/{f}.json'" for f in files) + "]"


def bundle_run(root: Path, kind: str, *args: str, extra_config: Path | None = None, timeout: int = 300):
    config = _configs(kind)
    if extra_config is not None:
        config = config[:-1] + f",'{extra_config}']"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", config, *args]
    return subprocess.run(cmd, cwd=root, env=ENV, capture_output=True, text=True, timeout=timeout)


def cli(*args: str, cwd: Path, timeout: int = 300):
    cmd = [sys.executable, "-m", "monai_unet2015", "segment", *args]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def last_line(proc) -> str:
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def assert_short_error(proc, *words: str) -> str:
    """Non-zero exit, no traceback, and a last line that starts with 'error:' and names ``words``."""
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    line = last_line(proc)
    assert line.startswith("error: "), proc.stderr[-3000:]
    for w in words:
        assert w in line, (w, line)
    return line


def _read(path: Path) -> np.ndarray:
    return tifffile.imread(path) if path.suffix == ".tif" else np.asarray(Image.open(path))


# ---------------------------------------------------------------------------------- 1. booleans that mean it
@pytest.mark.parametrize("name,kind", list(FLAGS))
def test_every_boolean_key_means_what_it_says(name, kind, bundles, tmp_path):
    """Each boolean key of each config, in two runs with different spellings, reaches the config as a bool."""
    root = bundles[name]
    probe = tmp_path / "probe.json"
    probe.write_text(json.dumps({"run": ["$print('FLAGS=' + repr(@flags), flush=True)"]}))
    keys = FLAGS[(name, kind)]
    for shift in (0, 1):
        chosen = {k: SPELLINGS[(2 * i + shift) % len(SPELLINGS)] for i, k in enumerate(keys)}
        args = [a for k, (word, _) in chosen.items() for a in (f"--{k}", word)]
        proc = bundle_run(root, kind, *args, extra_config=probe)
        assert proc.returncode == 0, proc.stderr[-3000:]
        got = ast.literal_eval(next(line for line in proc.stdout.splitlines() if line.startswith("FLAGS="))[6:])
        assert got == {k: meant for k, (_, meant) in chosen.items()} | {k: got[k] for k in got if k not in keys}
        other = OTHER_FLAGS.get((name, kind), {})
        assert set(got) == set(keys) | set(other) and all(got[k] == v for k, v in other.items())
    assert not (root / "runs").exists() and not (root / "eval").exists()


@pytest.mark.parametrize("name,kind", list(FLAGS))
def test_a_boolean_key_refuses_other_values(name, kind, bundles):
    root = bundles[name]
    for key in FLAGS[(name, kind)]:
        proc = bundle_run(root, kind, f"--{key}", "maybe")
        assert_short_error(proc, f"--{key}", "'maybe'", "true/false", "yes/no", "1/0")
    assert not (root / "runs").exists() and not (root / "eval").exists()


@pytest.mark.parametrize("name", [EM, CELLS])
def test_amp_and_channels_last_take_auto(name, bundles, tmp_path):
    """``auto`` (any letter case, and the default) reaches the config as 'auto', decided on the machine at run
    time by ``monai_unet2015.engines.choose_precision``; other words are refused as for the booleans above."""
    root = bundles[name]
    probe = tmp_path / "probe.json"
    probe.write_text(json.dumps({"run": ["$print('FLAGS=' + repr(@flags), flush=True)"]}))
    proc = bundle_run(root, "train", "--amp", "AUTO", extra_config=probe)  # channels_last: the default
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = ast.literal_eval(next(line for line in proc.stdout.splitlines() if line.startswith("FLAGS="))[6:])
    assert got["amp"] == got["channels_last"] == "auto"
    line = assert_short_error(bundle_run(root, "train", "--channels_last", "fast"), "--channels_last", "'fast'")
    assert "use auto or one of true/false, yes/no, 1/0, on/off" in line
    assert not (root / "runs").exists()


def test_tta_false_is_off_and_true_is_on(bundles, tmp_path):
    root = bundles[EM]
    outs = {}
    for label, args in {"default": [], "false": ["--tta", "false"], "no": ["--tta", "no"], "yes": ["--tta", "yes"]}.items():
        out = tmp_path / label
        proc = bundle_run(root, "inference", "--output_dir", str(out), "--roi_size", "100", *args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[label] = _read(out / "isbi2012_test_00_prob.tif")
    np.testing.assert_array_equal(outs["false"], outs["default"])
    np.testing.assert_array_equal(outs["no"], outs["default"])
    assert np.abs(outs["yes"] - outs["default"]).max() > 1e-4


@pytest.mark.parametrize("kind", ["inference", "evaluate", "inference_large"])
def test_tta_auto_is_on_a_gpu_only(kind, bundles, tmp_path):
    """``tta`` defaults to ``auto``: the 8 flips/rotations on a GPU (milliseconds), one pass on a CPU; an explicit
    value wins on either. Only the flag is read (the probe runs nothing), so no GPU is needed to check the rule."""
    root = bundles[CELLS]
    probe = tmp_path / "probe.json"
    large = kind == "inference_large"
    # inference_large.json: what its inferer does ("workers": each dask worker decides by its own device)
    said = ("'workers' if getattr(@inferer, 'gpu_only', False) else "
            "isinstance(@inferer, monai_unet2015.inferers.DihedralTTAInferer)") if large else "@flags#tta"
    probe.write_text(json.dumps({"run": ["$print('FLAGS=' + repr({'tta': " + said + "}), flush=True)"]}))
    gpu, cpu = ("cuda", "cpu") if large else ("$torch.device('cuda:0')", "$torch.device('cpu')")
    # the default: on exactly where the config's own device (cuda:0 when present) is a GPU; inference_large.json's
    # device "auto" is each worker's own, so there the workers decide
    cases = [((), "workers" if large else torch.cuda.is_available()), (("--device", cpu), False),
             (("--device", gpu), True),
             (("--device", gpu, "--tta", "false"), False), (("--device", cpu, "--tta", "AUTO"), False),
             (("--device", cpu, "--tta", "on"), True)]
    for args, meant in cases:
        proc = bundle_run(root, kind, *args, extra_config=probe)
        assert proc.returncode == 0, proc.stderr[-3000:]
        got = ast.literal_eval(next(line for line in proc.stdout.splitlines() if line.startswith("FLAGS="))[6:])
        assert got["tta"] == meant and type(got["tta"]) is type(meant), (args, got)


def test_cli_tta_defaults_to_the_bundle_auto(monkeypatch):
    import monai_unet2015.__main__ as cli_main

    seen = []
    monkeypatch.setattr(cli_main, "segment", lambda *a: seen.append(a[4]) or [])
    for argv, meant in [([], "auto"), (["--tta"], "true"), (["--tta", "false"], "false")]:
        assert cli_main.main(["segment", *argv]) == 0
        assert seen[-1] == meant, argv


# ------------------------------------------------------------------------ 2. shipped weights never overwritten
@needs_data
@pytest.mark.parametrize("name", [EM, CELLS])
def test_training_never_touches_the_shipped_weights(name, tmp_path):
    root = _copy(name, tmp_path)
    shipped = sha256sum(root / "models" / "model.pt")
    crop = tmp_path / "data"
    if name == EM:
        for sub in ("image", "label"):
            (crop / sub).mkdir(parents=True)
            for k in (0, 20):
                arr = _read(DATA / "isbi2012" / "train" / sub / f"{k:02d}.png")
                Image.fromarray(arr[:200, :200]).save(crop / sub / f"{k:02d}.png")
        data = ["--train_indices", "[0]", "--val_indices", "[20]"]
    else:
        (crop / "01").mkdir(parents=True)
        (crop / "01_GT" / "SEG").mkdir(parents=True)
        for t in (2, 54):
            tifffile.imwrite(crop / "01" / f"t{t:03d}.tif", _read(DATA / "dic-hela" / "01" / f"t{t:03d}.tif")[:200, :200])
            lab = _read(DATA / "dic-hela" / "01_GT" / "SEG" / f"man_seg{t:03d}.tif")[:200, :200]
            tifffile.imwrite(crop / "01_GT" / "SEG" / f"man_seg{t:03d}.tif", lab)
        data = ["--train_frames", "[2]", "--val_frames", "[54]"]
    args = ["--dataset_dir", str(crop), *data, "--epochs", "1", "--num_iters_per_epoch", "2", "--val_interval", "1",
            "--train_roi_size", "188", "--num_workers", "0", "--use_silver_truth", "false"][: None if name == CELLS else -2]
    proc = bundle_run(root, "train", *args, "--run_name", "first")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = root / "runs" / "first"
    assert (run_dir / "model.pt").is_file() and (run_dir / "checkpoints" / "checkpoint_final.pt").is_file()
    assert sha256sum(root / "models" / "model.pt") == shipped
    # row 10: a clean log without a terminal: one line per iteration, no progress bar
    assert "\r" not in proc.stdout + proc.stderr and "%|" not in proc.stdout + proc.stderr
    assert proc.stdout.count("Iter: ") >= 2
    # the same run name again without --resume: refused, the run is not overwritten
    before = {p: sha256sum(p) for p in run_dir.rglob("*.pt")}
    proc = bundle_run(root, "train", *args, "--run_name", "first", "--resume", "false")
    assert_short_error(proc, "--run_name first", "already holds a training run", "--resume true")
    assert {p: sha256sum(p) for p in run_dir.rglob("*.pt")} == before
    # nothing to resume: refused before any work
    proc = bundle_run(root, "train", *args, "--run_name", "second", "--resume", "yes")
    assert_short_error(proc, "--run_name second", "no checkpoint to resume from", "first")
    # inference and evaluation use the shipped weights unless --ckpt_path says otherwise
    proc = bundle_run(root, "inference", "--output_dir", str(tmp_path / "trained"),
                      "--ckpt_path", str(run_dir / "model.pt"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Restored all variables from {run_dir / 'model.pt'}" in proc.stdout
    assert sha256sum(root / "models" / "model.pt") == shipped


# ------------------------------------------------------------------------------------ 3. one inference path
def test_cli_without_weights_is_a_clear_error(tmp_path):
    root = _copy(EM, tmp_path, weights=False)
    out = tmp_path / "out"
    proc = cli("--bundle", str(root), "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert_short_error(proc, "models/model.pt", "does not exist")
    assert not out.exists()
    proc = bundle_run(root, "inference", "--output_dir", str(out))
    assert_short_error(proc, "--ckpt_path", "models/model.pt", "does not exist")
    assert not out.exists()


def test_cli_width_mismatch_and_corrupt_weights(bundles, tmp_path):
    root = bundles[EM]
    out = tmp_path / "out"
    wide = tmp_path / "wide.pt"
    torch.save({"model": UNet2015(features=(8, 16, 32, 64, 128)).state_dict()}, wide)
    proc = bundle_run(root, "inference", "--output_dir", str(out), "--ckpt_path", str(wide))
    assert_short_error(proc, "features [8, 16, 32, 64, 128]", "[4, 8, 16, 32, 64]", "--features")
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint at all")
    proc = bundle_run(root, "inference", "--output_dir", str(out), "--ckpt_path", str(bad))
    assert_short_error(proc, "corrupt.pt", "not a readable PyTorch checkpoint")
    proc = cli("--bundle", str(root), "--output", str(out), "--weights", str(bad), cwd=tmp_path)
    assert_short_error(proc, "--weights", "corrupt.pt")
    assert not out.exists()
    # the CLI reads the width of the wider checkpoint from its tensors and runs
    proc = cli("--bundle", str(root), "--output", str(out), "--weights", str(wide), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(out.iterdir())) == 4  # prob, mask, neurons, overlay


# ---------------------------------------------------------------------------------------- 4. TIFF stacks
@needs_data
def test_tiff_stack_segmented_slice_by_slice(bundles, tmp_path):
    root = bundles[EM]
    slices = np.stack([_read(DATA / "isbi2012" / "train" / "image" / f"{k:02d}.png")[:150, :170] for k in range(3)])
    stack_dir, single = tmp_path / "stack", tmp_path / "single"
    stack_dir.mkdir(), single.mkdir()
    tifffile.imwrite(stack_dir / "volume.tif", slices, photometric="minisblack")
    for k, s in enumerate(slices):
        Image.fromarray(s).save(single / f"slice{k}.png")
    proc = bundle_run(root, "inference", "--dataset_dir", str(stack_dir), "--output_dir", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc2 = bundle_run(root, "inference", "--dataset_dir", str(single), "--output_dir", str(tmp_path / "ref"))
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    out, ref = tmp_path / "out", tmp_path / "ref"
    prob, mask = _read(out / "volume_prob.tif"), _read(out / "volume_mask.tif")
    assert prob.shape == mask.shape == slices.shape and prob.dtype == np.float32 and mask.dtype == np.uint8
    for k in range(3):
        np.testing.assert_array_equal(prob[k], _read(ref / f"slice{k}_prob.tif"))
        np.testing.assert_array_equal(mask[k], _read(ref / f"slice{k}_mask.png"))
        np.testing.assert_array_equal(_read(out / "volume_neurons.tif")[k], _read(ref / f"slice{k}_neurons.tif"))
        np.testing.assert_array_equal(_read(out / f"volume_overlay_z{k:04d}.png"), _read(ref / f"slice{k}_overlay.png"))
    assert not list(out.glob("*.partial*"))
    # the CLI takes the same path
    proc = cli("--bundle", str(root), "--input", str(stack_dir / "volume.tif"), "--output", str(tmp_path / "cli"),
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_array_equal(_read(tmp_path / "cli" / "volume_prob.tif"), prob)
    # a real 3D volume (NIfTI) needs the explicit option
    import nibabel as nib

    vol_dir = tmp_path / "nifti"
    vol_dir.mkdir()
    nib.save(nib.Nifti1Image(np.moveaxis(slices, 0, -1).transpose(1, 0, 2).astype(np.float32), np.eye(4)),
             vol_dir / "volume.nii.gz")
    proc = bundle_run(root, "inference", "--dataset_dir", str(vol_dir), "--output_dir", str(tmp_path / "vol"))
    assert_short_error(proc, "volume.nii.gz", "3D volume", "--volume_as_slices true")
    assert not (tmp_path / "vol").exists()
    proc = bundle_run(root, "inference", "--dataset_dir", str(vol_dir), "--output_dir", str(tmp_path / "vol"),
                      "--volume_as_slices", "true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    vol_prob = _read(tmp_path / "vol" / "volume_prob.tif")
    assert vol_prob.shape == slices.shape
    np.testing.assert_allclose(vol_prob, prob, atol=1e-6)


# -------------------------------------------------------------------------------------------- 5. colour
def test_colour_input_is_segmented_in_grey_in_both_entry_points(bundles, tmp_path):
    root = bundles[EM]
    grey_img = _read(BUNDLES / EM / "sample" / "isbi2012_test_00.png")[:120, :140].astype(np.float64)
    rgb = np.stack([grey_img, np.roll(grey_img, 3, 0), 255 - grey_img], -1).astype(np.uint8)
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(rgb).save(inputs / "rgb.png")
    tifffile.imwrite(inputs / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    grey = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    tifffile.imwrite(inputs / "grey.tif", grey.astype(np.float32))
    for label, run in {
        "bundle": lambda out: bundle_run(root, "inference", "--dataset_dir", str(inputs), "--output_dir", str(out)),
        "cli": lambda out: cli("--bundle", str(root), "--input", str(inputs), "--output", str(out), cwd=tmp_path),
    }.items():
        out = tmp_path / label
        proc = run(out)
        assert proc.returncode == 0, proc.stderr[-3000:]
        log = proc.stdout + proc.stderr
        assert "rgb.png is a colour image: segmenting its grey value" in log
        assert "planar.tif is a colour image" in log
        ref = _read(out / "grey_prob.tif")
        assert ref.shape == (120, 140)
        np.testing.assert_allclose(_read(out / "rgb_prob.tif"), ref, atol=1e-6)
        np.testing.assert_allclose(_read(out / "planar_prob.tif"), ref, atol=1e-6)


# -------------------------------------------------------------------------------------------- 6. NaN pixels
def test_nan_pixels_are_refused_before_inference(bundles, tmp_path):
    root = bundles[EM]
    img = _read(BUNDLES / EM / "sample" / "isbi2012_test_00.png")[:100, :100].astype(np.float32)
    img.reshape(-1)[np.random.default_rng(0).choice(img.size, 100, replace=False)] = np.nan
    inputs = tmp_path / "in"
    inputs.mkdir()
    tifffile.imwrite(inputs / "holes.tif", img)
    out = tmp_path / "out"
    proc = bundle_run(root, "inference", "--dataset_dir", str(inputs), "--output_dir", str(out))
    assert_short_error(proc, "holes.tif", "100 NaN or infinite pixels")
    proc = cli("--bundle", str(root), "--input", str(inputs / "holes.tif"), "--output", str(out), cwd=tmp_path)
    assert_short_error(proc, "holes.tif", "100 NaN or infinite pixels")
    assert not out.exists()


# -------------------------------------------------------------------------- 7. empty or wrong --dataset_dir
def test_empty_or_wrong_dataset_dir(bundles, tmp_path):
    root = bundles[EM]
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = bundle_run(root, "inference", "--dataset_dir", str(empty), "--output_dir", str(out))
    assert_short_error(proc, str(empty), "'*'", "it is empty")
    jpgs = tmp_path / "jpgs"
    jpgs.mkdir()
    for k in range(2):
        Image.fromarray(np.zeros((20, 20), np.uint8)).save(jpgs / f"im{k}.jpg")
    (jpgs / "notes.txt").write_text("x")
    proc = bundle_run(root, "inference", "--dataset_dir", str(jpgs), "--image_glob", "*.png", "--output_dir", str(out))
    assert_short_error(proc, str(jpgs), "'*.png'", "3 files", "2 .jpg", "im0.jpg", "--image_glob '*.jpg'")
    proc = bundle_run(root, "inference", "--dataset_dir", str(tmp_path / "nowhere"), "--output_dir", str(out))
    assert_short_error(proc, "nowhere", "does not exist")
    proc = cli("--bundle", str(root), "--input", str(tmp_path / "nowhere.png"), "--output", str(out), cwd=tmp_path)
    assert_short_error(proc, "--input", "nowhere.png", "does not exist")
    assert not out.exists()


# ------------------------------------------------------------------ 8. short errors; 9. tile sizes checked early
def test_user_mistakes_end_in_two_plain_lines(bundles, tmp_path):
    root = bundles[EM]
    out = tmp_path / "out"
    four_d = tmp_path / "in"
    four_d.mkdir()
    tifffile.imwrite(four_d / "tzyx.tif", np.zeros((2, 3, 20, 20), np.uint8), photometric="minisblack")
    proc = bundle_run(root, "inference", "--dataset_dir", str(four_d), "--output_dir", str(out))
    line = assert_short_error(proc, "tzyx.tif", "(Z, Y, X) stacks")
    assert len(proc.stderr.strip().splitlines()) < 12  # not 60-250 lines of ConfigExpression traceback
    for value, words in {"0": ("roi_size", "positive", "got 0"), "-5": ("roi_size", "got -5")}.items():
        proc = bundle_run(root, "inference", "--output_dir", str(out), "--roi_size", value)
        assert_short_error(proc, *words)
    proc = cli("--bundle", str(root), "--output", str(out), "--roi-size", "0", cwd=tmp_path)
    assert_short_error(proc, "roi_size", "positive")
    assert not out.exists()
    # a real bug keeps its full traceback
    probe = tmp_path / "bug.json"
    probe.write_text(json.dumps({"run": ["${}['missing key']"]}))
    proc = bundle_run(root, "inference", extra_config=probe)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "KeyError" in proc.stderr
    del line


# ----------------------------------------------------------------------------- 10. inference summary line
def test_inference_names_its_output_folder(bundles, tmp_path):
    root = bundles[CELLS]
    out = tmp_path / "cells"
    proc = bundle_run(root, "inference", "--output_dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = [line for line in proc.stdout.splitlines() if "Segmented 1 image" in line]
    assert summary and f"wrote 4 files to {out.resolve()}" in summary[0]
    assert sorted(p.name for p in out.iterdir()) == [
        f"dic_hela_01_t010_{k}" for k in ("instances.tif", "mask.png", "overlay.png", "prob.tif")
    ]

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

"""The bundles' out-of-core inference, ``configs/inference_large.json``, against their in-memory ``inference.json``.

For each bundle, a stack of three crops of its sample image is written as a zarr array (chunked unlike the
output) and as a TIFF stack; ``python -m monai.bundle run --config_file configs/inference_large.json`` runs on
them in a subprocess (a 2-worker local dask cluster on 127.0.0.1) with the shipped weights, and its OME-Zarr
output is compared with what ``configs/inference.json`` writes for the TIFF stack: the same probabilities (to
float rounding), the same mask and the same instances. Then: the summary line, a rerun that finds every chunk
complete, ``--tta true`` against ``inference.json --tta true``, and the refusals (an output path that holds another
array, a missing input) that write nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

for _module in ("dask", "distributed", "zarr", "ome_zarr"):
    pytest.importorskip(_module, reason="the 'large' extra (pip install 'monai-unet2015[large]') is not installed")

import tifffile  # noqa: E402
import zarr  # noqa: E402

from monai.bundle import ConfigParser  # noqa: E402
from monai_unet2015.data.images import read_slice  # noqa: E402
from monai_unet2015.transforms.instances.watershed import WatershedInstances  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
EM, CELLS = "unet2015_em_membranes", "unet2015_dic_hela"
NAMES = (EM, CELLS)
INSTANCES = {EM: "neurons", CELLS: "instances"}  # what inference.json calls its instance labels
ENV = {k: v for k, v in os.environ.items() if k != "MONAI_UNET2015_TRACEBACK"} | {"OMP_NUM_THREADS": "2"}
CHUNK = 128  # output chunks of 128 x 128: 2 x 2 per slice, each reading its neighbours' pixels


def _slices(sample: Path) -> np.ndarray:
    """Three different 256 x 240 crops of the sample image, as a (Z, Y, X) stack."""
    a = read_slice(sample, -1)
    return np.stack([a[:256, :240], a[256:, 16:256], a[100:356, 272:]])


def _sha(folder: Path) -> dict:
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def _short_error(proc, *words: str) -> str:
    """Non-zero exit, no traceback, a last line 'error: ...' naming ``words``."""
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    line = [x for x in proc.stderr.strip().splitlines() if x.strip()][-1]
    assert line.startswith("error: "), proc.stderr[-3000:]
    for w in words:
        assert w in line, (w, line)
    return line


@pytest.fixture(scope="module", params=NAMES)
def case(request, tmp_path_factory):
    """A copy of the bundle (shipped weights), the stack as zarr and TIFF, and inference.json's outputs for it."""
    name = request.param
    tmp = tmp_path_factory.mktemp(name)
    ignore = shutil.ignore_patterns("runs", "eval", "__pycache__")
    root = Path(shutil.copytree(BUNDLES / name, tmp / name, ignore=ignore))
    stack = _slices(next((root / "sample").iterdir()))
    zarr_path = tmp / "stack.zarr"
    zarr.create_array(str(zarr_path), shape=stack.shape, chunks=(1, 100, 100), dtype=stack.dtype)[...] = stack
    (tmp / "tiff").mkdir()
    tiff_path = tmp / "tiff" / "stack.tif"
    tifffile.imwrite(tiff_path, stack, photometric="minisblack")
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
           "--dataset_dir", str(tmp / "tiff"), "--output_dir", str(tmp / "ref")]
    proc = subprocess.run(cmd, cwd=root, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = {
        "prob": tifffile.imread(tmp / "ref" / "stack_prob.tif"),
        "mask": tifffile.imread(tmp / "ref" / "stack_mask.tif"),
        "instances": tifffile.imread(tmp / "ref" / f"stack_{INSTANCES[name]}.tif"),
    }
    assert ref["prob"].shape == ref["mask"].shape == ref["instances"].shape == stack.shape
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    return {"name": name, "root": root, "tmp": tmp, "zarr": zarr_path, "tiff": tiff_path, "ref": ref, "meta": meta}


def large(case: dict, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m monai.bundle run --config_file configs/inference_large.json`` from the bundle folder."""
    root = case["root"]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference_large.json",
           "--bundle_root", str(root), "--n_workers", "2", "--progress", "false", *args]
    return subprocess.run(cmd, cwd=root, env=ENV, capture_output=True, text=True, timeout=timeout)


def _summary(proc, done: int, chunks: int, output: Path) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = f"Segmented {done} of {chunks} chunks ({chunks - done} already complete) into {output}"
    assert any(x.startswith(line) and "Mpixel/s" in x for x in proc.stdout.splitlines()), proc.stdout[-2000:]


def _check_output(case: dict, out: Path, instances: bool) -> zarr.Group:
    ref = case["ref"]
    group = zarr.open_group(str(out), mode="r")
    prob = group["0"][...]
    assert prob.shape == (1, *ref["prob"].shape) and prob.dtype == np.float32
    assert float(np.abs(prob[0] - ref["prob"]).max()) <= 1e-5
    mask = group["labels/mask/0"][...]
    assert mask.dtype == np.uint8 and set(np.unique(ref["mask"])) <= {0, 255}
    np.testing.assert_array_equal(mask, (ref["mask"] == 255).astype(np.uint8))
    if instances:
        np.testing.assert_array_equal(group["labels/instances/0"][...], ref["instances"].astype(np.uint32))
    else:
        assert "instances" not in group["labels"]
    # the OME-Zarr metadata: axes, the bundle's name and version
    attrs = group.attrs.asdict()
    (scale,) = attrs["ome"]["multiscales"]
    assert [a["name"] for a in scale["axes"]] == ["c", "z", "y", "x"]
    assert scale["name"] == case["meta"]["name"]
    assert attrs["unet2015"]["bundle_name"] == case["meta"]["name"]
    assert attrs["unet2015"]["bundle_version"] == case["meta"]["version"]
    return group


def test_zarr_stack_in_small_chunks_then_resumed(case):
    """A zarr stack in 128 x 128 chunks: inference.json's probabilities and mask; a rerun has nothing left to do."""
    out = case["tmp"] / "from_zarr.zarr"
    args = ["--input_path", str(case["zarr"]), "--output_path", str(out), "--chunk_size", str(CHUNK),
            "--write_instances", "false"]
    _summary(large(case, *args), 12, 12, out)
    _check_output(case, out, instances=False)
    before = _sha(out)
    _summary(large(case, *args), 0, 12, out)
    assert _sha(out) == before


def test_tiff_stack_with_instances(case):
    """A TIFF stack in whole-slice chunks (the default with instances): probabilities, mask and instances."""
    out = case["tmp"] / "from_tiff.zarr"
    _summary(large(case, "--input_path", str(case["tiff"]), "--output_path", str(out), "--write_instances", "yes"),
             3, 3, out)
    group = _check_output(case, out, instances=True)
    assert group["labels/instances/0"].dtype == np.uint32 and int(group["labels/instances/0"][...].max()) > 1


def test_tta_equals_inference_json_tta(case):
    """``--tta true`` (the 8 flips / rotations) in 128 x 128 chunks: inference.json --tta true's probabilities."""
    if case["name"] != EM:
        pytest.skip("one bundle suffices: the TTA path does not depend on the bundle")
    tmp = case["tmp"]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
           "--dataset_dir", str(tmp / "tiff"), "--output_dir", str(tmp / "ref_tta"), "--tta", "true"]
    proc = subprocess.run(cmd, cwd=case["root"], env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = tifffile.imread(tmp / "ref_tta" / "stack_prob.tif")
    out = tmp / "tta.zarr"
    _summary(large(case, "--input_path", str(case["zarr"]), "--output_path", str(out), "--chunk_size", str(CHUNK),
                   "--write_instances", "false", "--tta", "true"), 12, 12, out)
    prob = zarr.open_array(str(out / "0"), mode="r")[...]
    assert float(np.abs(prob[0] - ref).max()) <= 1e-5
    assert float(np.abs(ref - case["ref"]["prob"]).max()) > 1e-3  # TTA changes the result: the test can tell


def test_refusals_write_nothing(case):
    """An output path that holds another array stops with one line, before any work, and is left as it was."""
    out = case["tmp"] / "refused.zarr"
    other = case["tmp"] / "other.zarr"
    zarr.create_array(str(other), shape=(4, 5), chunks=(2, 5), dtype="int16")[...] = np.arange(20).reshape(4, 5)
    before = _sha(other)
    proc = large(case, "--input_path", str(case["zarr"]), "--output_path", str(other))
    _short_error(proc, str(other), "already holds something", "nothing was written")
    assert _sha(other) == before
    if case["name"] == EM:  # the required paths
        _short_error(large(case, "--output_path", str(out)), "--input_path is required")
        assert not out.exists()


@pytest.mark.parametrize("name", NAMES)
def test_large_config_agrees_with_inference_json(name):
    """The keys inference_large.json shares with inference.json hold the same values, its probability channel,
    normalisation and instance step are inference.json's, and the flags read as booleans."""
    root = BUNDLES / name
    small, large_ = ConfigParser(), ConfigParser()
    small.read_config(str(root / "configs" / "inference.json"))
    large_.read_config(str(root / "configs" / "inference_large.json"))
    for p in (small, large_):
        p.read_meta(str(root / "configs" / "metadata.json"))
        p["bundle_root"] = str(root)
    for key in ("features", "network_def", "ckpt_path", "roi_size", "sw_batch_size", "amp_dtype", "threshold",
                "tile_inferer", "tta", "tta_group"):
        assert large_.get(key) == small.get(key), key
    # the written channel: the one inference.json's postprocessing keeps as "prob"
    (keep,) = [t for t in small.get_parsed_content("postprocessing").transforms
               if type(t).__name__ == "Lambdad" and "prob" in t.keys]
    assert keep.func[0](torch.arange(2).reshape(2, 1)).tolist() == [[large_["probability_channel"]]]
    target = small["normalisation"]["_target_"]
    assert large_["normalize"] == {"ScaleIntensityd": "minmax", "NormalizeIntensityd": "standardize"}[target]
    # the instance step: inference.json's watershed with the same parameters, as an array transform
    post = small.get_parsed_content("postprocessing").transforms
    (ws,) = [t for t in post if type(t).__name__ == "WatershedInstancesd"]
    large_["write_instances"] = True
    step = large_.get_parsed_content("instances")
    assert isinstance(step.transform, WatershedInstances) and vars(step.transform) == vars(ws.transform)
    assert large_.get_parsed_content("flags") == {
        "tta": "auto", "write_mask": True, "write_instances": True, "progress": True}
    # tta auto, device auto: each worker decides by its own device (on a CPU: one pass)
    inferer = large_.get_parsed_content("inferer")
    assert inferer.gpu_only and inferer.inferer is large_.get_parsed_content("tile_inferer")
    large_["device"] = "cpu"
    assert large_.get_parsed_content("inferer", lazy=False) is large_.get_parsed_content("tile_inferer")
    large_["device"] = "auto"
    net = large_.get_parsed_content("network")
    assert net.checkpoint == str(root / "models" / "model.pt") and net.device == "auto"
    assert type(net.network.module).__name__ == "UNet2015"
    assert large_.get_parsed_content("job#attributes") == {
        "bundle_name": large_["_meta_#name"], "bundle_version": large_["_meta_#version"]}

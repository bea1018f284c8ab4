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

"""Release packaging of the bundles and the model-zoo download round trip over a local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from monai.bundle import download, load, run
from monai_unet2015.bundle import (
    BundleInputError, bundle_files, export_weights, latest_checkpoint, package_bundle, select_bundle_files,
)
from monai_unet2015.bundle import package as package_module
from monai_unet2015.bundle.package import main
from monai_unet2015.networks.nets import UNet2015

REPO = Path(__file__).resolve().parents[1]
EM = "unet2015_em_membranes"
TINY = [4, 8, 16, 32, 64]


@pytest.fixture
def tiny_bundle(tmp_path):
    """A copy of the EM bundle with a tiny width, random weights and training leftovers that must not ship."""
    root = tmp_path / "src" / EM
    shutil.copytree(REPO / "bundles" / EM, root, ignore=shutil.ignore_patterns("runs", "eval", "models", "__pycache__"))
    cfg = json.loads((root / "configs" / "inference.json").read_text())  # the bundle's common config
    cfg["features"] = TINY
    (root / "configs" / "inference.json").write_text(json.dumps(cfg, indent=4))
    (root / "models").mkdir()
    torch.manual_seed(0)
    torch.save(UNet2015(features=TINY).state_dict(), root / "models" / "model.pt")
    torch.save({}, root / "models" / "checkpoint_epoch=3.pt")
    (root / "runs" / "checkpoints").mkdir(parents=True)
    (root / "runs" / "events.out.tfevents.0").write_text("x")
    (root / "eval").mkdir()
    (root / "eval" / "x_mask.png").write_text("x")
    return root


def test_package_layout_and_checksum(tiny_bundle, tmp_path):
    zip_path, digest = package_bundle(tiny_bundle, tmp_path / "dist")
    version = json.loads((tiny_bundle / "configs" / "metadata.json").read_text())["version"]
    assert zip_path.name == f"{EM}_v{version}.zip"
    assert digest == hashlib.sha256(zip_path.read_bytes()).hexdigest()
    assert Path(f"{zip_path}.sha256").read_text() == f"{digest}  {zip_path.name}\n"
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    assert all(n.startswith(f"{EM}/") for n in names)
    configs = ("metadata.json", "inference.json", "train.json", "train_cpu.json", "evaluate.json", "multi_gpu_train.json",
               "logging.conf")
    others = ("models/model.pt", "LICENSE", "docs/README.md", "docs/data_license.txt")
    expected = {f"{EM}/configs/{f}" for f in configs} | {f"{EM}/{f}" for f in others}
    assert expected <= set(names)
    assert not any("/runs/" in n or "/eval/" in n or "checkpoint" in n for n in names)
    assert any(n.startswith(f"{EM}/sample/") for n in names)
    # reproducible: the same bundle gives the same bytes
    _, digest2 = package_bundle(tiny_bundle, tmp_path / "dist2")
    assert digest2 == digest
    # command line
    assert main([str(tiny_bundle), "--out", str(tmp_path / "dist3")]) == 0
    assert (tmp_path / "dist3" / zip_path.name).is_file()


def test_package_errors(tiny_bundle, tmp_path, capsys):
    with pytest.raises(ValueError, match="is not a bundle"):
        package_bundle(tmp_path, tmp_path / "d")
    with pytest.raises(ValueError, match="name must contain"):
        package_bundle(tiny_bundle, tmp_path / "d", name="a b")
    (tiny_bundle / "models" / "model.pt").unlink()
    with pytest.raises(ValueError, match="model.pt is missing"):
        package_bundle(tiny_bundle, tmp_path / "d")
    assert main([str(tiny_bundle), "--out", str(tmp_path / "d")]) == 2
    assert "model.pt is missing" in capsys.readouterr().err
    zip_path, _ = package_bundle(tiny_bundle, tmp_path / "d", require_weights=False)
    assert zip_path.is_file()
    meta = tiny_bundle / "configs" / "metadata.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "version": "one"}))
    with pytest.raises(ValueError, match="'version' must be"):
        package_bundle(tiny_bundle, tmp_path / "d", require_weights=False)


def test_bundle_files_and_latest_checkpoint(tiny_bundle):
    files = {p.as_posix() for p in bundle_files(tiny_bundle)}
    assert "models/model.pt" in files and "models/checkpoint_epoch=3.pt" not in files
    assert not any(f.startswith(("runs/", "eval/")) for f in files)
    assert latest_checkpoint(tiny_bundle / "runs" / "checkpoints") is None
    assert latest_checkpoint(tiny_bundle / "nowhere") is None
    assert latest_checkpoint(tiny_bundle / "models").endswith("checkpoint_epoch=3.pt")
    with pytest.raises(ValueError, match="not a folder"):
        latest_checkpoint(tiny_bundle / "LICENSE")


def _names(zip_path):
    with zipfile.ZipFile(zip_path) as zf:
        return sorted(zf.namelist())


def _git(cwd, *args):
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CEILING_DIRECTORIES": ""}
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


@pytest.fixture
def git_bundle(tiny_bundle, tmp_path):
    """The tiny bundle in a git repository whose .gitignore is the project's, with a stale ignored
    models/model.ts, an ignored outputs/ folder and a file nobody added."""
    repo = tmp_path / "repo"
    root = repo / "bundles" / EM
    root.parent.mkdir(parents=True)
    shutil.move(str(tiny_bundle), str(root))
    shutil.copy(REPO / ".gitignore", repo / ".gitignore")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")  # tracked = in the index; a commit is not needed
    (root / "models" / "model.ts").write_bytes(b"stale torchscript export")
    (root / "outputs").mkdir()
    (root / "outputs" / "pred.png").write_text("x")
    (root / "notes.txt").write_text("scratch, never git-added")
    return root


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_package_in_git_work_tree_holds_only_tracked_files(git_bundle, tmp_path, caplog, capsys):
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=git_bundle, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "models/model.pt" in tracked and "models/model.ts" not in tracked
    selection = select_bundle_files(git_bundle)
    assert selection.source == "git"
    assert {f.as_posix() for f in selection.files} == {
        f for f in tracked if not f.startswith(("runs/", "eval/")) and "checkpoint" not in f
    }
    left_out = {f.as_posix(): why for f, why in selection.left_out}
    assert left_out["notes.txt"] == "not added to git"
    assert left_out["models/model.ts"] == "derived artefact"
    assert left_out["outputs/pred.png"] == "derived artefact"
    assert left_out["models/checkpoint_epoch=3.pt"] == "resume checkpoint"
    with caplog.at_level(logging.INFO, logger=package_module.__name__):
        zip_path, _ = package_bundle(git_bundle, tmp_path / "dist")
    names = _names(zip_path)
    assert f"{EM}/models/model.pt" in names and f"{EM}/configs/metadata.json" in names
    assert not any(n.endswith(("model.ts", "notes.txt")) or "/outputs/" in n for n in names)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == ["left out (not added to git): notes.txt"]
    assert any("models/model.ts" in r.getMessage() for r in caplog.records)
    # the command line prints what it left out
    assert main([str(git_bundle), "--out", str(tmp_path / "dist2")]) == 0
    err = capsys.readouterr().err
    assert "chosen by git" in err and "notes.txt" in err and "models/model.ts" in err
    # --no-git: the exclude rules alone (the untracked file ships, the derived artefacts still do not)
    assert main([str(git_bundle), "--out", str(tmp_path / "dist3"), "--no-git"]) == 0
    names = _names(tmp_path / "dist3" / zip_path.name)
    assert f"{EM}/notes.txt" in names and f"{EM}/models/model.ts" not in names
    # a bundle whose weights were never git-added is refused with a hint
    _git(git_bundle, "rm", "-q", "--cached", "models/model.pt")
    with pytest.raises(ValueError, match=r"models/model.pt is not tracked: git add"):
        package_bundle(git_bundle, tmp_path / "dist4")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_package_falls_back_to_exclude_rules_without_git(git_bundle, monkeypatch):
    monkeypatch.setattr(package_module.shutil, "which", lambda name: None)
    selection = select_bundle_files(git_bundle)
    assert selection.source == "exclude rules (git is not installed)"
    files = {f.as_posix() for f in selection.files}
    assert "notes.txt" in files and "models/model.pt" in files
    assert not any(f.endswith(".ts") or f.startswith(("outputs/", "runs/", "eval/")) for f in files)


def test_package_outside_git_never_packs_derived_artefacts(tiny_bundle, tmp_path):
    (tiny_bundle / "models" / "model.ts").write_bytes(b"stale torchscript export")
    (tiny_bundle / "outputs").mkdir()
    (tiny_bundle / "outputs" / "pred.png").write_text("x")
    (tiny_bundle / "docs" / "outputs.md").write_text("a doc named like a derived folder still ships")
    selection = select_bundle_files(tiny_bundle)
    assert selection.source.startswith("exclude rules (not in a git work tree")
    left_out = {f.as_posix(): why for f, why in selection.left_out}
    assert left_out["models/model.ts"] == left_out["outputs/pred.png"] == "derived artefact"
    assert left_out["runs/events.out.tfevents.0"] == left_out["eval/x_mask.png"] == "derived artefact"
    names = _names(package_bundle(tiny_bundle, tmp_path / "dist")[0])
    assert f"{EM}/models/model.pt" in names and f"{EM}/docs/outputs.md" in names
    assert not any(n.endswith(".ts") or "/outputs/" in n or "/runs/" in n or "/eval/" in n for n in names)


@pytest.mark.parametrize("args", [["--help"], ["BUNDLE", "--out", "OUT"]])
def test_command_line_has_no_runpy_warning(tiny_bundle, tmp_path, args):
    """``monai_unet2015.bundle`` must not import ``.package`` itself, else ``python -m`` warns (RuntimeWarning)."""
    args = [str(tiny_bundle) if a == "BUNDLE" else str(tmp_path / "dist") if a == "OUT" else a for a in args]
    res = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "monai_unet2015.bundle.package", *args],
        capture_output=True, text=True, cwd=str(REPO), timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "RuntimeWarning" not in res.stderr and "sys.modules" not in res.stderr
    if "--help" not in args:
        version = json.loads((tiny_bundle / "configs" / "metadata.json").read_text())["version"]
        assert (tmp_path / "dist" / f"{EM}_v{version}.zip").is_file()


def test_lazy_package_attributes():
    import monai_unet2015.bundle as bundle

    assert bundle.package_bundle is package_bundle and bundle.sha256sum is package_module.sha256sum
    assert bundle.bundle_files is bundle_files
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bundle.nope  # noqa: B018


def test_download_load_run_round_trip(tiny_bundle, tmp_path, monkeypatch):
    """Serve the release zip on 127.0.0.1, fetch it like a model-zoo bundle, load the weights and run inference."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    dist = tmp_path / "dist"
    zip_path, digest = package_bundle(tiny_bundle, dist)
    version = json.loads((tiny_bundle / "configs" / "metadata.json").read_text())["version"]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(dist))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{zip_path.name}"
        bundle_dir = tmp_path / "hub"
        download(name=EM, version=version, bundle_dir=str(bundle_dir), url=url, progress=False)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    root = bundle_dir / EM
    assert hashlib.sha256((bundle_dir / f"{EM}.zip").read_bytes()).hexdigest() == digest
    assert (root / "models" / "model.pt").read_bytes() == (tiny_bundle / "models" / "model.pt").read_bytes()
    # load: the network of the bundle's config with the shipped weights
    net = load(name=EM, bundle_dir=str(bundle_dir), workflow_type="inference", device="cpu", progress=False)
    ref = UNet2015(features=TINY)
    ref.load_state_dict(torch.load(tiny_bundle / "models" / "model.pt", weights_only=True))
    x = torch.rand(1, 1, 188, 188)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), ref.eval()(x))
    # run the downloaded bundle's inference on its shipped sample
    run(config_file=str(root / "configs" / "inference.json"), bundle_root=str(root))
    outputs = sorted(p.name for p in (root / "eval").iterdir())
    assert outputs == [f"isbi2012_test_00_{k}" for k in ("mask.png", "neurons.tif", "overlay.png", "prob.tif")]
    assert np.asarray(Image.open(root / "eval" / "isbi2012_test_00_overlay.png")).shape == (512, 512, 3)


def test_export_weights_from_a_training_checkpoint(tmp_path):
    """The final training checkpoint becomes the shipped float16 state dict; an existing file is kept."""
    net = UNet2015(features=(4, 8, 16))
    opt = torch.optim.Adam(net.parameters())
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "trainer": {"epoch": 3}},
               tmp_path / "checkpoint_final.pt")
    out = tmp_path / "models" / "model.pt"
    assert export_weights(tmp_path / "checkpoint_final.pt", out) == {
        "spatial_dims": 2, "in_channels": 1, "out_channels": 2, "features": [4, 8, 16]}
    state = torch.load(out, weights_only=True)
    assert set(state) == set(net.state_dict())
    for k, v in net.state_dict().items():  # each tensor rounded to the nearest float16, nothing else
        assert state[k].dtype == torch.float16 and torch.equal(state[k], v.half())
    shipped = out.read_bytes()
    with pytest.raises(BundleInputError, match="exists"):
        export_weights(tmp_path / "checkpoint_final.pt", out)
    assert out.read_bytes() == shipped
    export_weights(tmp_path / "checkpoint_final.pt", out, dtype="float32", overwrite=True)
    assert all(v.dtype == torch.float32 for v in torch.load(out, weights_only=True).values())
    with pytest.raises(ValueError, match="float16"):
        export_weights(tmp_path / "checkpoint_final.pt", tmp_path / "x.pt", dtype="int8")


def test_export_weights_averages_checkpoints(tmp_path):
    """A list of checkpoints ships the mean of their weights: equal to the hand-computed mean, and a network of
    another width is refused."""
    paths, states = [], []
    for seed in range(3):
        torch.manual_seed(seed)
        net = UNet2015(features=(4, 8, 16))
        states.append(net.state_dict())
        paths.append(tmp_path / f"checkpoint_epoch={seed}.pt")
        torch.save({"model": net.state_dict(), "trainer": {"epoch": seed}}, paths[-1])
    out = tmp_path / "model.pt"
    export_weights(paths, out, dtype="float32")
    got = torch.load(out, weights_only=True)
    for k in states[0]:
        torch.testing.assert_close(got[k], (states[0][k] + states[1][k] + states[2][k]) / 3, rtol=1e-6, atol=1e-7)
    torch.save(UNet2015(features=(4, 8, 32)).state_dict(), tmp_path / "wider.pt")
    with pytest.raises(BundleInputError, match="another network"):
        export_weights([paths[0], tmp_path / "wider.pt"], tmp_path / "x.pt")
    with pytest.raises(BundleInputError, match="empty"):
        export_weights([], tmp_path / "y.pt")
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()

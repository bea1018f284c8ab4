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

"""bioimage.io export of both bundles (monai_unet2015.bundle.bioimageio, docs/bioimageio.md).

Needs the ``bioimageio`` extra (the Makefile installs it); no network: the packages cite DOIs, not URLs.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

spec = pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")
core = pytest.importorskip("bioimageio.core", reason="the bioimageio extra is not installed")

from bioimageio.spec.model import v0_5  # noqa: E402

from monai_unet2015.bundle import BundleInputError  # noqa: E402
from monai_unet2015.bundle import bioimageio as export  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
EM, CELLS = "unet2015_em_membranes", "unet2015_dic_hela"
#: what each bundle's package says: output channel names, the channel the bundle writes, its threshold, preprocessing
EXPECTED = {
    EM: (["membrane", "cell_interior"], 0, 0.8, "scale_range"),
    CELLS: (["background", "cell"], 1, 0.5, "zero_mean_unit_variance"),
}


def _copy(name: str, tmp_path: Path) -> Path:
    """A copy of what the export reads (configs, docs, models, sample, LICENSE), never the real bundle."""
    return Path(
        shutil.copytree(BUNDLES / name, tmp_path / "bundles" / name, ignore=shutil.ignore_patterns("runs", "eval"))
    )


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """Both bundles exported once: the EM bundle as a folder, the DIC-HeLa bundle as a zip."""
    out = tmp_path_factory.mktemp("bioimageio")
    return {
        EM: export.export_bioimageio(BUNDLES / EM, out / EM),
        CELLS: export.export_bioimageio(BUNDLES / CELLS, out / f"{CELLS}.zip"),
    }


@pytest.mark.parametrize("name", (EM, CELLS))
def test_package_validates(packages, name):
    path = packages[name]
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary sibling left
    descr = spec.load_description(path, perform_io_checks=True)
    assert isinstance(descr, v0_5.ModelDescr), descr.validation_summary.format()
    assert descr.validation_summary.status == "valid-format"
    assert descr.format_version.startswith("0.5")
    names, channel, threshold, pre = EXPECTED[name]
    (ipt,), (opt,) = descr.inputs, descr.outputs
    # valid padding as the spec describes it: input 188 + 16 n, output = input - 184 (the halo the model crops)
    assert [a.type for a in ipt.axes] == ["batch", "channel", "space", "space"]
    for a in ipt.axes[2:]:
        assert (a.size.min, a.size.step) == (188, 16)
    for a, ref in zip(opt.axes[2:], ("y", "x")):
        assert isinstance(a.size, v0_5.SizeReference) and not hasattr(a, "halo")
        assert (str(a.size.tensor_id), str(a.size.axis_id), a.size.offset) == ("raw", ref, -184)
    assert [str(c) for c in opt.axes[1].channel_names] == names
    assert [p.id for p in ipt.preprocessing if p.id != "ensure_dtype"] == [pre]
    assert descr.config.model_extra["monai_unet2015"]["threshold"] == threshold
    assert descr.config.model_extra["monai_unet2015"]["probability_channel"] == channel
    assert {"pytorch_state_dict", "torchscript"} <= {w for w, d in descr.weights if d is not None}
    assert {str(c.doi) for c in descr.cite} >= {export.KNOWN_DOIS["Ronneberger"]}
    assert len(descr.cite) == 3 and str(descr.license) == "Apache-2.0" and descr.covers
    # test tensors: the centre 508 x 508 of the 512 x 512 sample (raw) and the bundle's probabilities (324 x 324)
    from bioimageio.core.digest_spec import get_test_input_sample, get_test_output_sample

    x = get_test_input_sample(descr).members["raw"].data.values
    y = get_test_output_sample(descr).members["probabilities"].data.values
    assert x.shape == (1, 1, 508, 508) and y.shape == (1, 2, 324, 324)
    assert x.max() > 1.5  # raw intensities: the normalisation is the package's preprocessing
    np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-5)
    # the channel the bundle writes is the one its name says: membranes are a thin fraction, cells most of a frame
    fraction = float((y[0, channel] >= threshold).mean())
    assert (0.1 < fraction < 0.45) if name == EM else (0.3 < fraction < 0.95), fraction


@pytest.mark.parametrize("name", (EM, CELLS))
def test_core_test_model(packages, name):
    summary = core.test_model(packages[name])
    failures = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failures
    tested = " ".join(d.name for d in summary.details)
    for wf in ("pytorch_state_dict", "torchscript"):
        assert f"Reproduce test outputs from test inputs ({wf})" in tested
        assert f"Run {wf} inference for inputs with batch_size: 2 and size parameter n: 2" in tested


def test_weights_are_the_bundles(packages):
    with zipfile.ZipFile(packages[CELLS]) as zf:
        with zf.open("weights.pt") as f:
            state = torch.load(f, map_location="cpu", weights_only=True)
    bundle = torch.load(BUNDLES / CELLS / "models" / "model.pt", map_location="cpu", weights_only=True)
    bundle = bundle.get("model", bundle)
    assert sorted(state) == sorted(f"unet.{k}" for k in bundle)
    assert all(torch.equal(state[f"unet.{k}"], v) for k, v in bundle.items())


def test_wrapper_matches_bundle_axis_order():
    """(batch, channel, y, x) in, the bundle's (x, y) network inside: a transposed image gives the transposed result."""
    torch.manual_seed(0)
    net = export.UNet2015Probabilities(features=(4, 8, 16), dropout=0.0).eval()
    x = torch.rand(1, 1, 60, 60)
    with torch.no_grad():
        want = torch.softmax(net.unet(x.transpose(-1, -2)), 1).transpose(-1, -2)
        assert torch.allclose(net(x), want)
        assert torch.allclose(torch.jit.script(net)(x), want)
    with pytest.raises(ValueError, match="spatial_dims must be 2"):
        export.UNet2015Probabilities(spatial_dims=3)


def _nothing_written(folder: Path) -> bool:
    return not any(folder.iterdir())


def test_bundle_without_weights(tmp_path):
    root = _copy(EM, tmp_path)
    (root / "models" / "model.pt").unlink()
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BundleInputError, match=r"has no weights: .*models/model.pt is missing.*large_files.yml"):
        export.export_bioimageio(root, out / "em.zip")
    assert _nothing_written(out)


def test_width_does_not_match_weights(tmp_path, capsys):
    root = _copy(CELLS, tmp_path)
    inference = root / "configs" / "inference.json"
    config = json.loads(inference.read_text())
    config["features"] = [32, 64, 128, 256, 512]
    inference.write_text(json.dumps(config, indent=4))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BundleInputError, match=r"features \[32, 64, 128, 256, 512\] in configs/inference.json but "
                       r"\[16, 32, 64, 128, 256\] in models/model.pt.*Set 'features'"):
        export.export_bioimageio(root, out / "cells")
    assert export.main([str(root), str(out / "cells")]) == 2
    assert "error: " in capsys.readouterr().err
    assert _nothing_written(out)


def test_existing_output(tmp_path, capsys):
    for existing in (tmp_path / "pkg", tmp_path / "pkg.zip"):
        existing.mkdir() if existing.suffix != ".zip" else existing.write_bytes(b"mine")
        with pytest.raises(BundleInputError, match="exists: give a new path"):
            export.export_bioimageio(BUNDLES / EM, existing)
        assert export.main([str(BUNDLES / EM), str(existing)]) == 2
        assert "exists" in capsys.readouterr().err
    assert not any((tmp_path / "pkg").iterdir()) and (tmp_path / "pkg.zip").read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg", "pkg.zip"]
    with pytest.raises(BundleInputError, match="does not exist"):
        export.export_bioimageio(BUNDLES / EM, tmp_path / "no" / "pkg")
    with pytest.raises(BundleInputError, match="is not a bundle"):
        export.export_bioimageio(tmp_path, tmp_path / "new")


def test_failure_half_way_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "_cover", broken)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_bioimageio(BUNDLES / EM, out / "em")
    assert _nothing_written(out)

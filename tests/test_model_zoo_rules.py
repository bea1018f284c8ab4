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

"""The MONAI model zoo's contribution rules (monai_unet2015.bundle.model_zoo, docs/model_zoo.md) on both bundles."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from monai_unet2015.bundle.model_zoo import RULES, check_bundle, failed, main
from monai_unet2015.bundle.package import sha256sum

REPO = Path(__file__).resolve().parents[1]
BUNDLES = REPO / "bundles"
NAMES = ("unet2015_em_membranes", "unet2015_dic_hela")


def _copy(name: str, tmp_path: Path) -> Path:
    """A copy of the bundle without its training and evaluation outputs (the real bundles are never touched)."""
    return Path(shutil.copytree(BUNDLES / name, tmp_path / name, ignore=shutil.ignore_patterns("runs", "eval")))


def _problems(root: Path, rule_id: str) -> list[str]:
    return next(r.problems for r in check_bundle(root) if r.rule.id == rule_id)


@pytest.mark.parametrize("name", NAMES)
def test_rules_hold_on_the_bundles(name):
    results = check_bundle(BUNDLES / name)
    assert [r.rule.id for r in results] == [r.id for r in RULES]
    assert failed(results) == []


@pytest.mark.parametrize("name", NAMES)
def test_large_files_hash_is_the_weights(name):
    entries = yaml.safe_load((BUNDLES / name / "large_files.yml").read_text())["large_files"]
    (weights,) = [e for e in entries if e["path"] == "models/model.pt"]
    assert set(weights) == {"path", "url", "hash_val", "hash_type"}
    assert weights["hash_type"] == "sha256"
    assert weights["hash_val"] == sha256sum(BUNDLES / name / "models" / "model.pt")


def test_every_rule_names_its_source():
    assert len({r.id for r in RULES}) == len(RULES)
    for r in RULES:
        assert r.text and ("model-zoo" in r.source or "MONAI" in r.source or "schema" in r.source), r
    doc = (REPO / "docs" / "model_zoo.md").read_text()
    for r in RULES:
        assert f"`{r.id}`" in doc, f"docs/model_zoo.md does not describe rule {r.id}"


def test_readme_section_removed(tmp_path):
    root = _copy(NAMES[0], tmp_path)
    readme = root / "docs" / "README.md"
    readme.write_text(re.sub(r"(?m)^## System configuration.*$", "## Hardware", readme.read_text()))
    problems = _problems(root, "readme-sections")
    assert problems == [
        "docs/README.md: no 'system configuration and training time' section (a heading starting with "
        "'system configuration')"
    ]
    lines = failed(check_bundle(root))
    assert len(lines) == 1 and lines[0].startswith("readme-sections: ") and "readme_template.md" in lines[0]


def test_wrong_hash(tmp_path):
    root = _copy(NAMES[1], tmp_path)
    path = root / "large_files.yml"
    real = sha256sum(root / "models" / "model.pt")
    path.write_text(path.read_text().replace(real, "0" * 64))
    (problem,) = _problems(root, "large-files")
    assert f"sha256 of models/model.pt is {real}, the file says {'0' * 64}" in problem


def test_large_files_malformed(tmp_path):
    root = _copy(NAMES[0], tmp_path)
    path = root / "large_files.yml"
    path.write_text("large_files:\n  - path: models/model.pt\n    hash_val: abc\n    hash_type: crc32\n")
    assert _problems(root, "large-files") == ["large_files.yml entry 0: url missing"]
    path.write_text("large_files:\n  - path: models/model.pt\n    url: u\n    hash_val: abc\n    hash_type: crc32\n")
    assert _problems(root, "large-files") == ["large_files.yml entry 0: hash_type 'crc32' is not one of md5, sha1, sha256, sha512"]
    path.unlink()
    assert "large_files.yml (or .yaml / .json) is missing" in _problems(root, "large-files")[0]


def test_metadata_and_config_keys(tmp_path):
    root = _copy(NAMES[0], tmp_path)
    meta_path = root / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["optional_packages_version"]
    meta["numpy_version"] = "latest"
    meta["changelog"] = {"0.0.1": "x"}
    meta_path.write_text(json.dumps(meta))
    problems = _problems(root, "metadata")
    assert "metadata.json: 'optional_packages_version' missing" in problems
    assert any("'numpy_version' must be a version" in p for p in problems)
    assert any("is not in 'changelog'" in p for p in problems)

    inference = root / "configs" / "inference.json"
    config = json.loads(inference.read_text())
    del config["inferer"]
    inference.write_text(json.dumps(config))
    assert _problems(root, "inference-keys") == ["inference.json: key 'inferer' missing"]

    train = root / "configs" / "train.json"
    config = json.loads(train.read_text())
    config["train"]["handlers"]["validation"]["interval"] = 5
    del config["validate"]["key_metric"]
    train.write_text(json.dumps(config))
    problems = _problems(root, "train-keys")
    assert "train.json: ValidationHandler interval is 5, not '@val_interval'" in problems
    assert "train.json: 'validate#evaluator' uses 'key_val_metric' but 'validate#key_metric' is not defined" in problems


def test_files_licence_and_size(tmp_path):
    root = _copy(NAMES[1], tmp_path)
    (root / "LICENSE").unlink()
    (root / "docs" / "data_license.txt").unlink()
    with open(root / "models" / "big.ts", "wb") as f:  # sparse: 26 MB on paper, nothing on disk
        f.truncate(26 * 1024 * 1024)
    assert _problems(root, "necessary-files") == ["LICENSE is missing"]
    assert _problems(root, "data-license") == ["metadata.json names a data_source but docs/data_license.txt is missing"]
    assert _problems(root, "file-size") == ["models/big.ts is 26.0 MB (> 25 MB) and not in large_files.yml"]


def test_command_line(tmp_path, capsys):
    assert main([str(BUNDLES / n) for n in NAMES]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok   ") == 2 * len(RULES) and "FAIL" not in out
    root = _copy(NAMES[0], tmp_path)
    (root / "large_files.yml").unlink()
    assert main([str(root)]) == 1
    out = capsys.readouterr().out
    assert "FAIL large-files" in out and "CONTRIBUTING.md 'Prepare a config file for large files'" in out
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err

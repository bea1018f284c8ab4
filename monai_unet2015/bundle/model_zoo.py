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

"""The MONAI model zoo's contribution rules, checked on a bundle folder, offline.

Command line (exit status 1 when a rule fails, 2 for a bad argument)::

    python -m monai_unet2015.bundle.model_zoo bundles/unet2015_em_membranes bundles/unet2015_dic_hela

Each rule has an id and the place of the zoo (``Project-MONAI/model-zoo``) that states it; ``docs/model_zoo.md``
lists them. The zoo's own CI downloads the files of ``large_files.yml`` and checks the metadata against its
schema online; here the files are checked where they are (hash of the local copy) and nothing is downloaded.
Configs are read as the bundles run them: ``train.json`` merged over the common ``inference.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["ZooRule", "RuleResult", "RULES", "check_bundle", "failed", "main", "README_SECTIONS", "MAX_FILE_MB"]

_CONTRIBUTING = "model-zoo CONTRIBUTING.md"
_VERIFY = "model-zoo ci/verify_bundle.py"
#: the zoo's limit for a file in the repository ("Model storage"); larger files go into large_files.yml
MAX_FILE_MB = 25
#: hash types the zoo's ``download_large_files`` accepts (``ci/utils.py``, ``SUPPORTED_HASH_TYPES``)
HASH_TYPES = ("md5", "sha1", "sha256", "sha512")
#: README sections: (what, accepted headings). The zoo's docs/readme_template.md (Model Description, Data,
#: Performance, Additional Usage Steps, System Configuration incl. training time, Citation Info / References)
#: and the layout of its bundles' READMEs (Model Overview, Training configuration, MONAI Bundle Commands, License)
README_SECTIONS = (
    ("model overview", ("model overview", "model description")),
    ("data", ("data",)),
    ("training configuration", ("training configuration",)),
    ("performance", ("performance",)),
    ("commands", ("commands", "monai bundle commands", "additional usage steps")),
    ("system configuration and training time", ("system configuration",)),
    ("references", ("references", "citation info")),
    ("licence", ("license", "licence")),
)
#: metadata keys: required by the zoo's schema (meta_schema_*.json "required"), the MONAI bundle specification's
#: further fields that the zoo's CI installs from (``get_bundle_requirements.py``) or shows (``name``)
METADATA_REQUIRED = (
    "schema", "version", "changelog", "monai_version", "pytorch_version", "numpy_version",
    "required_packages_version", "optional_packages_version", "name", "task", "description", "authors",
    "copyright", "data_source", "data_type", "image_classes", "label_classes", "pred_classes", "eval_metrics",
    "intended_use", "references", "network_data_format",
)  # fmt: skip
NETWORK_IO_KEYS = ("type", "format", "num_channels", "spatial_shape", "dtype", "value_range", "is_patch_data", "channel_def")
INFERENCE_KEYS = ("bundle_root", "device", "network_def", "inferer", "output_dir")
TRAIN_KEYS = ("bundle_root", "device", "dataset_dir", "output_dir")
_VERSION = re.compile(r"^\d+(\.\d+)*([.+-]?[0-9A-Za-z.+-]+)?$")
_PERSONAL_PATH = re.compile(r"(/home/[^/\s'\"]+|/Users/[^/\s'\"]+|[A-Za-z]:\\\\Users\\\\)")


class ZooRule(NamedTuple):
    """One contribution rule: ``id``, what it asks (``text``), where the zoo states it (``source``), its check."""

    id: str
    text: str
    source: str
    check: Callable[[Path], list[str]]


class RuleResult(NamedTuple):
    """The outcome of one rule on one bundle: ``problems`` is empty when the rule holds."""

    rule: ZooRule
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


# ------------------------------------------------------------------------------------------------ helpers
def _find(folder: Path, stem: str) -> Path | None:
    """``stem.json|yaml|yml`` in ``folder`` (the zoo's ``_find_bundle_file``)."""
    for ext in ("json", "yaml", "yml"):
        if (folder / f"{stem}.{ext}").is_file():
            return folder / f"{stem}.{ext}"
    return None


def _load(path: Path) -> Any:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    import yaml

    return yaml.safe_load(path.read_text())


def _merged(root: Path, *names: str) -> dict:
    config: dict = {}
    for name in names:
        path = _find(root / "configs", name)
        if path is None:
            continue
        for k, v in (_load(path) or {}).items():
            config[k[1:] if k.startswith("+") else k] = v  # "+key" adds to the key (MONAI's list merge)
    return config


def _get(config: Any, key: str) -> Any:
    """The value at ``a#b#c`` (dict keys or list indices), or ``KeyError``."""
    for part in key.split("#"):
        if isinstance(config, dict) and part in config:
            config = config[part]
        elif isinstance(config, list) and part.lstrip("-").isdigit() and -len(config) <= int(part) < len(config):
            config = config[int(part)]
        else:
            raise KeyError(key)
    return config


def _has(config: Any, key: str) -> bool:
    try:
        _get(config, key)
    except KeyError:
        return False
    return True


def large_files(root: Path) -> tuple[Path | None, list[dict]]:
    """The large-files config of a bundle (``large_files.yml``/``.yaml``/``.json``) and its entries."""
    path = _find(root, "large_files")
    if path is None:
        return None, []
    data = _load(path) or {}
    entries = data.get("large_files") if isinstance(data, dict) else None
    return path, entries if isinstance(entries, list) else []


# ------------------------------------------------------------------------------------------------ checks
def _check_necessary_files(root: Path) -> list[str]:
    return [f"{f} is missing" for f in ("configs/metadata.json", "LICENSE") if not (root / f).is_file()]


def _check_preferred_files(root: Path) -> list[str]:
    out = [] if _find(root / "configs", "inference") else ["configs/inference.json (or .yaml) is missing"]
    _, entries = large_files(root)
    listed = {str(e.get("path", "")) for e in entries if isinstance(e, dict)}
    if not (root / "models" / "model.pt").is_file() and "models/model.pt" not in listed:
        out.append("models/model.pt is missing and large_files.yml does not list it")
    return out


def _check_data_license(root: Path) -> list[str]:
    meta = root / "configs" / "metadata.json"
    uses_data = meta.is_file() and bool(json.loads(meta.read_text()).get("data_source"))
    if uses_data and not (root / "docs" / "data_license.txt").is_file():
        return ["metadata.json names a data_source but docs/data_license.txt is missing"]
    return []


def _check_large_files(root: Path) -> list[str]:
    path, entries = large_files(root)
    if path is None:
        return ["large_files.yml (or .yaml / .json) is missing: the weights need path, url, hash_val, hash_type"]
    if not entries:
        return [f"{path.name}: no 'large_files' list"]
    out = []
    for i, e in enumerate(entries):
        where = f"{path.name} entry {i}"
        if not isinstance(e, dict):
            out.append(f"{where} is not a mapping")
            continue
        missing = [k for k in ("path", "url") if not e.get(k)]
        if missing:
            out.append(f"{where}: {', '.join(missing)} missing")
            continue
        rel = Path(str(e["path"]))
        if rel.is_absolute() or ".." in rel.parts:
            out.append(f"{where}: path {e['path']!r} must be relative to the bundle, inside it")
            continue
        hash_val, hash_type = str(e.get("hash_val") or ""), str(e.get("hash_type") or "")
        if hash_val and hash_type.lower() not in HASH_TYPES:
            out.append(f"{where}: hash_type {hash_type!r} is not one of {', '.join(HASH_TYPES)}")
            continue
        local = root / rel
        if hash_val and local.is_file():
            h = hashlib.new(hash_type.lower())
            with open(local, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            if h.hexdigest() != hash_val.lower():
                out.append(f"{where}: {hash_type} of {rel.as_posix()} is {h.hexdigest()}, the file says {hash_val}")
    listed = {str(e.get("path")) for e in entries if isinstance(e, dict)}
    if "models/model.pt" not in listed:
        out.append(f"{path.name} does not list the weights models/model.pt")
    for e in entries:
        if isinstance(e, dict) and str(e.get("path")) == "models/model.pt" and not e.get("hash_val"):
            out.append(f"{path.name}: the weights models/model.pt have no hash_val")
    return out


def _check_file_size(root: Path) -> list[str]:
    _, entries = large_files(root)
    listed = {str(e.get("path")) for e in entries if isinstance(e, dict)}
    out = []
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root)
        if not f.is_file() or rel.parts[0] in ("runs", "eval") or any(p.startswith(".") for p in rel.parts):
            continue
        if f.stat().st_size > MAX_FILE_MB * 1024 * 1024 and rel.as_posix() not in listed:
            out.append(f"{rel.as_posix()} is {f.stat().st_size / 2**20:.1f} MB (> {MAX_FILE_MB} MB) and not in large_files.yml")
    return out


def _check_metadata(root: Path) -> list[str]:
    path = root / "configs" / "metadata.json"
    if not path.is_file():
        return ["configs/metadata.json is missing"]
    meta = json.loads(path.read_text())
    out = [f"metadata.json: '{k}' missing" for k in METADATA_REQUIRED if k not in meta]
    version = meta.get("version")
    if version is not None and version not in (meta.get("changelog") or {}):
        out.append(f"metadata.json: version {version!r} is not in 'changelog'")
    for key in ("monai_version", "pytorch_version", "numpy_version"):
        if key in meta and not (isinstance(meta[key], str) and _VERSION.match(meta[key])):
            out.append(f"metadata.json: '{key}' must be a version such as '1.6.1' (the zoo pins {key[:-8]}==it), got {meta[key]!r}")
    for key in ("required_packages_version", "optional_packages_version"):
        packages = meta.get(key, {})
        if not isinstance(packages, dict):
            out.append(f"metadata.json: '{key}' must map package names to versions")
            continue
        for name, v in packages.items():
            if not (isinstance(v, str) and _VERSION.match(v)):
                out.append(f"metadata.json: {key} {name!r}: {v!r} is not a version (the zoo installs {name}==version)")
    if "eval_metrics" in meta and not (isinstance(meta["eval_metrics"], dict) and meta["eval_metrics"]):
        out.append("metadata.json: 'eval_metrics' must name at least one metric and its value")
    ndf = meta.get("network_data_format", {})
    for part in ("inputs", "outputs"):
        tensors = ndf.get(part) if isinstance(ndf, dict) else None
        if not isinstance(tensors, dict) or not tensors:
            if "network_data_format" in meta:
                out.append(f"metadata.json: network_data_format#{part} is missing or empty")
            continue
        for name, t in tensors.items():
            missing = [k for k in NETWORK_IO_KEYS if not isinstance(t, dict) or k not in t]
            if missing:
                out.append(f"metadata.json: network_data_format#{part}#{name}: {', '.join(missing)} missing")
    return out


def _check_inference_keys(root: Path) -> list[str]:
    if _find(root / "configs", "inference") is None:
        return []
    config = _merged(root, "inference")
    return [f"inference.json: key '{k}' missing" for k in INFERENCE_KEYS if not _has(config, k)]


def _validation_intervals(handlers: Any) -> list[Any]:
    items = handlers.values() if isinstance(handlers, dict) else handlers if isinstance(handlers, list) else []
    return [h.get("interval") for h in items if isinstance(h, dict) and str(h.get("_target_", "")).endswith("ValidationHandler")]


def _check_train_keys(root: Path) -> list[str]:
    if _find(root / "configs", "train") is None:
        return []
    config = _merged(root, "inference", "train")
    out = [f"train.json (over inference.json): key '{k}' missing" for k in TRAIN_KEYS if not _has(config, k)]
    if "train" in config:
        for k in ("train#trainer", "train#trainer#max_epochs", "train#dataset", "train#dataset#data", "train#handlers"):
            if not _has(config, k):
                out.append(f"train.json: '{k}' missing")
    if "validate" in config:
        for k in ("validate#evaluator", "validate#handlers", "validate#dataset", "validate#dataset#data"):
            if not _has(config, k):
                out.append(f"train.json: '{k}' missing")
    # an argument used by an engine or a dataset must be a key of its section
    uses = (
        ("train", "trainer", "postprocessing", "postprocessing"),
        ("train", "dataset", "transform", "preprocessing"),
        ("train", "trainer", "key_train_metric", "key_metric"),
        ("validate", "evaluator", "postprocessing", "postprocessing"),
        ("validate", "dataset", "transform", "preprocessing"),
        ("validate", "evaluator", "inferer", "inferer"),
        ("validate", "evaluator", "key_val_metric", "key_metric"),
    )
    for section, part, arg, key in uses:
        if _has(config, f"{section}#{part}#{arg}") and not _has(config, f"{section}#{key}"):
            out.append(f"train.json: '{section}#{part}' uses '{arg}' but '{section}#{key}' is not defined")
    intervals = _validation_intervals(config.get("train", {}).get("handlers") if isinstance(config.get("train"), dict) else None)
    for interval in intervals:
        if str(interval).split("@")[-1] != "val_interval":
            out.append(f"train.json: ValidationHandler interval is {interval!r}, not '@val_interval'")
    if intervals and "val_interval" not in config:
        out.append("train.json: ValidationHandler is used but the key 'val_interval' is not defined")
    return out


def _check_paths(root: Path) -> list[str]:
    out = []
    for f in sorted((root / "configs").glob("*")) if (root / "configs").is_dir() else []:
        if f.suffix in (".json", ".yaml", ".yml") and (m := _PERSONAL_PATH.search(f.read_text())):
            out.append(f"configs/{f.name}: personal path {m.group(0)!r}; use paths relative to bundle_root")
    return out


def _headings(text: str) -> list[str]:
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)):
            out.append(re.sub(r"[*_`]", "", m.group(1)).strip().lower())
    return out


def _check_readme(root: Path) -> list[str]:
    path = root / "docs" / "README.md"
    if not path.is_file():
        return ["docs/README.md is missing"]
    headings = _headings(path.read_text())
    return [
        f"docs/README.md: no '{what}' section (a heading starting with {' or '.join(repr(a) for a in aliases)})"
        for what, aliases in README_SECTIONS
        if not any(h.startswith(a) for h in headings for a in aliases)
    ]


RULES: tuple[ZooRule, ...] = (
    ZooRule("necessary-files", "configs/metadata.json and LICENSE", f"{_VERIFY} (necessary_files_list); "
            f"{_CONTRIBUTING} 'Preferred Files and Keys', 'License Format'", _check_necessary_files),
    ZooRule("preferred-files", "models/model.pt (or a large_files.yml link) and configs/inference.json",
            f"{_VERIFY} (preferred_files_list); {_CONTRIBUTING} 'Preferred Files and Keys'", _check_preferred_files),
    ZooRule("data-license", "docs/data_license.txt when the bundle uses third-party data",
            f"{_CONTRIBUTING} 'License Format'", _check_data_license),
    ZooRule("large-files", "large_files.yml in the bundle root: path, url, hash_val, hash_type (md5/sha1/sha256/"
            "sha512) per file; the hash matches the file", f"{_CONTRIBUTING} 'Prepare a config file for large files'; "
            "ci/utils.py download_large_files", _check_large_files),
    ZooRule("file-size", f"no file over {MAX_FILE_MB} MB in the repository unless large_files.yml links it",
            f"{_CONTRIBUTING} 'Model storage'", _check_file_size),
    ZooRule("metadata", "metadata.json fields: versions of monai/pytorch/numpy, required and optional packages, "
            "eval_metrics, network_data_format, version listed in changelog, name, ...",
            "meta_schema_20240725.json 'required'; MONAI Bundle Specification (metadata.json); "
            f"{_VERIFY} verify_version_changes, metadata_keys_list; ci/get_bundle_requirements.py; "
            f"{_CONTRIBUTING} 'Prepare dependencies', 'Model naming'", _check_metadata),
    ZooRule("inference-keys", "inference config keys bundle_root, device, network_def, inferer, output_dir",
            f"{_CONTRIBUTING} 'Preferred Files and Keys'", _check_inference_keys),
    ZooRule("train-keys", "train config keys bundle_root, device, dataset_dir, output_dir; train#trainer(#max_epochs), "
            "train#dataset(#data), train#handlers; validate#evaluator, validate#handlers, validate#dataset(#data); "
            "preprocessing/postprocessing/inferer/key_metric defined where used; ValidationHandler interval = "
            "@val_interval", f"{_CONTRIBUTING} 'Preferred Files and Keys'; {_VERIFY} verify_bundle_keys (earlier "
            "versions)", _check_train_keys),
    ZooRule("config-paths", "no personal paths (/home/<name>/) in configs", f"{_CONTRIBUTING} 'Preparing a bundle'",
            _check_paths),
    ZooRule("readme-sections", "docs/README.md sections: " + ", ".join(w for w, _ in README_SECTIONS),
            f"{_CONTRIBUTING} 'Readme Format' -> docs/readme_template.md; the zoo bundles' READMEs", _check_readme),
)  # fmt: skip


def check_bundle(bundle_dir: str | Path, rules: Sequence[ZooRule] = RULES) -> list[RuleResult]:
    """Check every rule of ``rules`` on ``bundle_dir``; the results in the order of ``rules``.

    Raises ``ValueError`` when ``bundle_dir`` is not a folder.

    Examples::

        >>> results = check_bundle("bundles/unet2015_em_membranes")
        >>> [r.rule.id for r in results if not r.ok]
        []
        >>> import tempfile
        >>> [r.problems for r in check_bundle(tempfile.mkdtemp()) if r.rule.id == "necessary-files"]
        [['configs/metadata.json is missing', 'LICENSE is missing']]
    """
    root = Path(bundle_dir)
    if not root.is_dir():
        raise ValueError(f"bundle_dir {str(bundle_dir)!r} is not a folder.")
    results = []
    for rule in rules:
        try:
            problems = rule.check(root)
        except Exception as e:  # an unreadable config is a failed rule, not a crash of the checker
            problems = [f"could not check: {type(e).__name__}: {e}"]
        results.append(RuleResult(rule, problems))
    return results


def failed(results: Sequence[RuleResult]) -> list[str]:
    """One line per problem: ``"<rule id>: <problem> [source]"``."""
    return [f"{r.rule.id}: {p} [{r.rule.source}]" for r in results for p in r.problems]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m monai_unet2015.bundle.model_zoo BUNDLE [BUNDLE ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m monai_unet2015.bundle.model_zoo", description="Check bundles against the MONAI model zoo's rules."
    )
    parser.add_argument("bundles", nargs="+", help="bundle folders")
    args = parser.parse_args(argv)
    bad = 0
    for bundle in args.bundles:
        try:
            results = check_bundle(bundle)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for r in results:
            print(f"{bundle}: {'ok  ' if r.ok else 'FAIL'} {r.rule.id}")
            for p in r.problems:
                print(f"    {p}\n    (rule: {r.rule.source})")
        bad += sum(not r.ok for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

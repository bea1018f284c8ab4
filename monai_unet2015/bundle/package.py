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

"""Release packaging of a bundle: ``{name}_v{version}.zip`` with a top-level ``{name}/`` folder, plus its SHA-256.

The zip has the layout that ``monai.bundle.download(name=..., version=..., url=...)`` expects: it is
extracted into ``bundle_dir`` and must hold exactly one top-level folder named after the bundle. Command
line::

    python -m monai_unet2015.bundle.package bundles/unet2015_em_membranes --out dist/
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["package_bundle", "bundle_files", "sha256sum", "main"]

#: folders and files of a working bundle that never go into a release (training outputs, caches)
EXCLUDE_DIRS = ("runs", "eval", "__pycache__", ".ipynb_checkpoints", ".pytest_cache")
EXCLUDE_SUFFIXES = (".pyc", ".pyo")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same bundle gives the same zip, byte for byte
_VERSION = re.compile(r"^\d+\.\d+\.\d+([.+-][0-9A-Za-z.+-]+)?$")


def sha256sum(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks.

    Examples::

        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "x.txt")
        >>> _ = open(f, "wb").write(b"abc")
        >>> sha256sum(f)[:16]
        'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def bundle_files(bundle_dir: str | Path) -> list[Path]:
    """The files of ``bundle_dir`` that a release contains, relative to it, sorted.

    Everything except training outputs and caches (:py:data:`EXCLUDE_DIRS`, ``*.pyc``), hidden files and
    resume checkpoints (``models/checkpoint*.pt``).
    """
    root = Path(bundle_dir)
    out = []
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root)
        if not f.is_file() or any(p in EXCLUDE_DIRS or p.startswith(".") for p in rel.parts):
            continue
        if f.suffix in EXCLUDE_SUFFIXES or (rel.parts[0] == "models" and f.name.startswith("checkpoint")):
            continue
        out.append(rel)
    return out


def package_bundle(
    bundle_dir: str | Path,
    out_dir: str | Path = "dist",
    name: str | None = None,
    require_weights: bool = True,
) -> tuple[Path, str]:
    """Zip a bundle for release and write the checksum beside it.

    Writes ``out_dir/{name}_v{version}.zip`` (every file of :py:func:`bundle_files` under a top-level
    ``{name}/`` folder, fixed timestamps, sorted entries) and ``out_dir/{name}_v{version}.zip.sha256``
    (``"<hex>  <zip name>"``, the format of ``sha256sum -c``).

    Args:
        bundle_dir: the bundle folder (holding ``configs/metadata.json``).
        out_dir: output folder, created if needed.
        name: bundle name; default the folder name of ``bundle_dir``.
        require_weights: refuse to package a bundle without ``models/model.pt``.

    Returns:
        the zip path and its SHA-256.

    Raises:
        ValueError: no ``configs/metadata.json``, a missing or malformed ``version``, a bad ``name``, or
            missing weights with ``require_weights``.
    """
    root = Path(bundle_dir).resolve()
    meta_file = root / "configs" / "metadata.json"
    if not meta_file.is_file():
        raise ValueError(f"bundle_dir {str(bundle_dir)!r} is not a bundle: no configs/metadata.json.")
    version = json.loads(meta_file.read_text()).get("version")
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ValueError(f"{meta_file}: 'version' must be a version string such as '0.1.0', got {version!r}.")
    name = root.name if name is None else name
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"name must contain only letters, digits, '_', '.' and '-', got {name!r}.")
    if require_weights and not (root / "models" / "model.pt").is_file():
        raise ValueError(
            f"{root / 'models' / 'model.pt'} is missing: train the bundle first (configs/train.json), "
            "or pass require_weights=False (--no-weights) for a release without weights."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    zip_path = out / f"{name}_v{version}.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel in bundle_files(root):
            info = zipfile.ZipInfo(f"{name}/{rel.as_posix()}", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, (root / rel).read_bytes())
    digest = sha256sum(zip_path)
    Path(f"{zip_path}.sha256").write_text(f"{digest}  {zip_path.name}\n")
    return zip_path, digest


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry: ``python -m monai_unet2015.bundle.package BUNDLE_DIR [--out DIR] [--name NAME]``."""
    parser = argparse.ArgumentParser(
        prog="python -m monai_unet2015.bundle.package", description=__doc__.splitlines()[0]
    )
    parser.add_argument("bundle_dir", help="the bundle folder, e.g. bundles/unet2015_em_membranes")
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    parser.add_argument("--name", default=None, help="bundle name (default: the folder name)")
    parser.add_argument("--no-weights", action="store_true", help="allow a release without models/model.pt")
    args = parser.parse_args(argv)
    try:
        zip_path, digest = package_bundle(args.bundle_dir, args.out, args.name, require_weights=not args.no_weights)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{zip_path}\nsha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

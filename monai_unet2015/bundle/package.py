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

Inside a git work tree only the files git tracks are packed (so a stale, git-ignored ``models/model.ts`` or
an unadded scratch file never ships); elsewhere the exclude rules of :py:func:`select_bundle_files` apply.
The files left out are logged (and printed by the command line).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = ["package_bundle", "bundle_files", "select_bundle_files", "BundleFiles", "sha256sum", "main"]

logger = logging.getLogger(__name__)

#: folders and files of a working bundle that never go into a release (training outputs, caches)
EXCLUDE_DIRS = ("runs", "eval", "__pycache__", ".ipynb_checkpoints", ".pytest_cache")
EXCLUDE_SUFFIXES = (".pyc", ".pyo")
#: derived artefacts of a bundle (the bundles' rules in the repository's ``.gitignore``), never packed, in git or not:
#: TorchScript exports ``models/*.ts`` and the top-level ``runs/``, ``eval/`` and ``outputs/`` folders
DERIVED_DIRS = ("runs", "eval", "outputs")
DERIVED_MODEL_SUFFIXES = (".ts",)
_CACHE_DIRS = ("__pycache__", ".ipynb_checkpoints", ".pytest_cache")
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


class BundleFiles(NamedTuple):
    """The files of a release, see :py:func:`select_bundle_files`.

    Attributes:
        files: the files packed, relative to the bundle folder, sorted.
        left_out: ``(file, reason)`` for every other file of the bundle folder (caches and ``*.pyc`` not
            listed), sorted.
        source: how ``files`` were chosen: ``"git"`` (tracked files) or ``"exclude rules"``, the latter with
            the reason git was not used.
    """

    files: list[Path]
    left_out: list[tuple[Path, str]]
    source: str


def _git_ls_files(root: Path, *options: str) -> list[Path] | str:
    """``git ls-files`` of ``root`` (paths relative to it), or why it could not run."""
    git = shutil.which("git")
    if git is None:
        return "git is not installed"
    try:
        res = subprocess.run(
            [git, "-C", str(root), "ls-files", "-z", *options, "--", "."], capture_output=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError) as e:
        return f"git ls-files failed: {e}"
    if res.returncode != 0:
        lines = res.stderr.decode(errors="replace").strip().splitlines()
        return f"not in a git work tree ({lines[0] if lines else f'git exited with {res.returncode}'})"
    return [Path(p) for p in res.stdout.decode(errors="surrogateescape").split("\0") if p]


def _is_cache(rel: Path) -> bool:
    return rel.suffix in EXCLUDE_SUFFIXES or any(p in _CACHE_DIRS for p in rel.parts)


def _excluded(rel: Path) -> str | None:
    """Why the exclude rules (applied in and outside git) keep ``rel`` out of a release, or ``None``."""
    if _is_cache(rel):
        return "cache"
    if rel.parts[0] in DERIVED_DIRS or (
        len(rel.parts) == 2 and rel.parts[0] == "models" and rel.suffix in DERIVED_MODEL_SUFFIXES
    ):
        return "derived artefact"
    if any(p in EXCLUDE_DIRS for p in rel.parts):
        return "training output"
    if any(p.startswith(".") for p in rel.parts):
        return "hidden"
    if rel.parts[0] == "models" and rel.name.startswith("checkpoint"):
        return "resume checkpoint"
    return None


def select_bundle_files(bundle_dir: str | Path, use_git: bool = True) -> BundleFiles:
    """The files of ``bundle_dir`` that a release contains, and those left out with the reason.

    With ``use_git`` and ``bundle_dir`` inside a git work tree, only files that git tracks (``git ls-files``,
    staged new files included) are candidates; when git is not installed or the folder is not in a work
    tree, every file is. Of the candidates the exclude rules then drop training outputs and caches
    (:py:data:`EXCLUDE_DIRS`, ``*.pyc``), derived artefacts (:py:data:`DERIVED_DIRS` and ``models/*.ts``,
    the bundles' ignore rules), hidden files and resume checkpoints (``models/checkpoint*.pt``).

    Args:
        bundle_dir: the bundle folder.
        use_git: restrict to git-tracked files when the folder is in a git work tree.

    Examples::

        >>> import os, tempfile
        >>> root = tempfile.mkdtemp()  # not in a git work tree: the exclude rules alone
        >>> for f in ("configs/metadata.json", "models/model.pt", "models/model.ts", "runs/log.txt"):
        ...     os.makedirs(os.path.dirname(os.path.join(root, f)), exist_ok=True)
        ...     _ = open(os.path.join(root, f), "w").write("x")
        >>> sel = select_bundle_files(root)
        >>> [f.as_posix() for f in sel.files]
        ['configs/metadata.json', 'models/model.pt']
        >>> [(f.as_posix(), why) for f, why in sel.left_out]
        [('models/model.ts', 'derived artefact'), ('runs/log.txt', 'derived artefact')]
    """
    root = Path(bundle_dir)
    on_disk = sorted(f.relative_to(root) for f in root.rglob("*") if f.is_file())
    tracked = _git_ls_files(root) if use_git else "use_git=False"
    if isinstance(tracked, str):
        candidates, source = set(on_disk), f"exclude rules ({tracked})"
        untracked: set[Path] = set()
    else:
        candidates, source = set(tracked), "git"
        others = _git_ls_files(root, "--others", "--exclude-standard")  # untracked and not ignored
        untracked = set(others) if isinstance(others, list) else set()
    files, left_out = [], []
    for rel in on_disk:
        why = _excluded(rel)
        if why is None and rel not in candidates:
            why = "not added to git" if rel in untracked else "ignored by git"
        if why is None:
            files.append(rel)
        elif why != "cache":
            left_out.append((rel, why))
    return BundleFiles(files, left_out, source)


def bundle_files(bundle_dir: str | Path, use_git: bool = True) -> list[Path]:
    """The files of ``bundle_dir`` that a release contains, relative to it, sorted.

    ``select_bundle_files(bundle_dir, use_git).files``: inside a git work tree only tracked files, and never
    training outputs, derived artefacts (``models/*.ts``, ``runs/``, ``eval/``, ``outputs/``), caches, hidden
    files or resume checkpoints (``models/checkpoint*.pt``).
    """
    return select_bundle_files(bundle_dir, use_git).files


def _log_left_out(selection: BundleFiles, limit: int = 20) -> None:
    logger.info("packing %d files, chosen by %s", len(selection.files), selection.source)
    for reason in sorted({why for _, why in selection.left_out}):
        names = [f.as_posix() for f, why in selection.left_out if why == reason]
        shown = ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
        level = logging.WARNING if reason == "not added to git" else logging.INFO
        logger.log(level, "left out (%s): %s", reason, shown)


def package_bundle(
    bundle_dir: str | Path,
    out_dir: str | Path = "dist",
    name: str | None = None,
    require_weights: bool = True,
    use_git: bool = True,
) -> tuple[Path, str]:
    """Zip a bundle for release and write the checksum beside it.

    Writes ``out_dir/{name}_v{version}.zip`` (every file of :py:func:`select_bundle_files` under a top-level
    ``{name}/`` folder, fixed timestamps, sorted entries) and ``out_dir/{name}_v{version}.zip.sha256``
    (``"<hex>  <zip name>"``, the format of ``sha256sum -c``). The files left out are logged (``logging``,
    this module's logger; a file not yet added to git as a warning).

    Args:
        bundle_dir: the bundle folder (holding ``configs/metadata.json``).
        out_dir: output folder, created if needed.
        name: bundle name; default the folder name of ``bundle_dir``.
        require_weights: refuse to package a bundle without ``models/model.pt``.
        use_git: inside a git work tree, pack only the files git tracks (see :py:func:`select_bundle_files`).

    Returns:
        the zip path and its SHA-256.

    Raises:
        ValueError: no ``configs/metadata.json``, a missing or malformed ``version``, a bad ``name``,
            missing weights with ``require_weights``, or (in git) ``configs/metadata.json`` or the weights
            not tracked.
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
    selection = select_bundle_files(root, use_git)
    needed = [Path("configs", "metadata.json")] + ([Path("models", "model.pt")] if require_weights else [])
    missing = [f.as_posix() for f in needed if f not in selection.files]
    if missing:
        raise ValueError(
            f"{root} is in a git work tree but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
            "tracked: git add them, or pass use_git=False (--no-git) to pack by the exclude rules alone."
        )
    _log_left_out(selection)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    zip_path = out / f"{name}_v{version}.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel in selection.files:
            info = zipfile.ZipInfo(f"{name}/{rel.as_posix()}", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, (root / rel).read_bytes())
    digest = sha256sum(zip_path)
    Path(f"{zip_path}.sha256").write_text(f"{digest}  {zip_path.name}\n")
    return zip_path, digest


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m monai_unet2015.bundle.package BUNDLE_DIR [--out DIR] [--name NAME] [--no-git]``."""
    parser = argparse.ArgumentParser(
        prog="python -m monai_unet2015.bundle.package", description=__doc__.splitlines()[0]
    )
    parser.add_argument("bundle_dir", help="the bundle folder, e.g. bundles/unet2015_em_membranes")
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    parser.add_argument("--name", default=None, help="bundle name (default: the folder name)")
    parser.add_argument("--no-weights", action="store_true", help="allow a release without models/model.pt")
    parser.add_argument(
        "--no-git", action="store_true", help="pack by the exclude rules alone, also inside a git work tree"
    )
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)  # the files left out, also when logging is not configured
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        zip_path, digest = package_bundle(
            args.bundle_dir, args.out, args.name, require_weights=not args.no_weights, use_git=not args.no_git
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    print(f"{zip_path}\nsha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

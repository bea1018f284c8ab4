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

"""Command line: ``python -m monai_unet2015 segment`` runs a bundle's inference on your images.

There is one inference path: the command runs the bundle's own ``configs/inference.json`` (by default the EM
membranes bundle beside the package, ``--bundle PATH`` for another), with that bundle's preprocessing,
output channel, threshold, width and writers, exactly as ``python -m monai.bundle run`` does. It segments 2D
images and (Z, Y, X) TIFF stacks slice by slice; see :py:mod:`monai_unet2015.data.images` for colour input,
non-finite pixels and 3D volumes.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "segment", "DEFAULT_BUNDLE", "SAMPLE"]

_REPO = Path(__file__).resolve().parent.parent
#: the bundle ``segment`` runs when no ``--bundle`` is given (beside the package in a clone of the repository)
DEFAULT_BUNDLE = _REPO / "bundles" / "unet2015_em_membranes"
SAMPLE = Path(__file__).resolve().parent / "data" / "samples" / "isbi2012_test_00.png"


def _bundle_root(bundle: str | Path | None):
    from monai_unet2015.bundle.errors import BundleInputError

    root = Path(bundle) if bundle is not None else DEFAULT_BUNDLE
    config = root / "configs" / "inference.json"
    if not config.is_file():
        if bundle is None:
            raise BundleInputError(
                f"the default EM bundle is not at {root} (this install has no bundles/ beside the package): "
                "pass --bundle PATH of a downloaded bundle."
            )
        raise BundleInputError(f"--bundle {root} is not a MONAI bundle: {config} does not exist.")
    return root


def segment(
    inputs: Sequence[str | Path] | None,
    output_dir: str | Path,
    bundle: str | Path | None = None,
    weights: str | Path | None = None,
    tta: bool | str = "auto",
    roi_size: int | None = None,
    threshold: float | None = None,
    device: str | None = None,
    volume_as_slices: bool = False,
) -> list[Path]:
    """Run ``bundle``'s ``configs/inference.json`` on ``inputs`` and return the files it wrote to ``output_dir``.

    Args:
        inputs: image files, folders or (Z, Y, X) TIFF stacks; ``None``: the bundle's own sample.
        output_dir: folder of the outputs (the bundle's names, e.g. ``<stem>_prob.tif``, ``<stem>_mask.png``).
        bundle: the bundle folder (default :py:data:`DEFAULT_BUNDLE`).
        weights: a checkpoint to use instead of the bundle's ``models/model.pt``; its width (``features``) is read
            from its tensors, so a bare state dict works.
        tta: average over the flips/rotations of the bundle's ``tta_group``; ``"auto"`` (default): on a GPU only,
            where the 8 passes cost milliseconds (:py:func:`monai_unet2015.bundle.on_gpu_if_auto`).
        roi_size: output tile size (default: the bundle's).
        threshold: mask threshold (default: the bundle's).
        device: e.g. ``"cpu"`` or ``"cuda:0"`` (default: the bundle's choice).
        volume_as_slices: segment 3D volumes that are not TIFF stacks slice by slice.
    """
    from monai.bundle import run

    from monai_unet2015.bundle.checkpoint import read_state_dict, unet2015_args_from_state_dict

    root = _bundle_root(bundle)
    overrides: dict[str, Any] = {"bundle_root": str(root), "output_dir": str(output_dir), "tta": tta,
                                 "volume_as_slices": bool(volume_as_slices)}
    if inputs is not None:
        overrides["dataset_dir"] = [str(p) for p in inputs]
    if weights is not None:
        overrides["ckpt_path"] = str(weights)
        overrides["features"] = unet2015_args_from_state_dict(read_state_dict(weights, "weights"))["features"]
    if roi_size is not None:
        overrides["roi_size"] = int(roi_size)
    if threshold is not None:
        overrides["threshold"] = float(threshold)
    if device is not None:
        overrides["device"] = f"$torch.device({device!r})"
    out = Path(output_dir)
    before = {p: p.stat().st_mtime_ns for p in out.glob("*") if p.is_file()} if out.is_dir() else {}
    meta = root / "configs" / "metadata.json"
    logging_file = root / "configs" / "logging.conf"
    run(
        config_file=str(root / "configs" / "inference.json"),
        meta_file=str(meta) if meta.is_file() else None,
        logging_file=str(logging_file) if logging_file.is_file() else None,
        **overrides,
    )
    return sorted(p for p in out.glob("*") if p.is_file() and before.get(p) != p.stat().st_mtime_ns)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monai_unet2015", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    seg = sub.add_parser(
        "segment",
        help="segment 2D images and TIFF stacks with a bundle's inference (default: the EM membranes bundle)",
        description="Runs the bundle's configs/inference.json on the given images; outputs are the bundle's.",
    )
    seg.add_argument("--input", nargs="+", default=None,
                     help="image files, folders or (Z, Y, X) TIFF stacks (default: the bundle's sample)")
    seg.add_argument("--output", default="outputs/sample", help="output folder (default: outputs/sample)")
    seg.add_argument("--bundle", default=None, help=f"bundle folder (default: {DEFAULT_BUNDLE})")
    seg.add_argument("--weights", default=None,
                     help="checkpoint instead of the bundle's models/model.pt; its width is read from its tensors")
    seg.add_argument("--tta", nargs="?", const="true", default="auto", metavar="{auto,true,false}",
                     help="average over the bundle's flips/rotations; --tta alone: true; default auto: on a GPU only")
    seg.add_argument("--roi-size", type=int, default=None, help="output tile size (default: the bundle's)")
    seg.add_argument("--threshold", type=float, default=None, help="mask threshold (default: the bundle's)")
    seg.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    seg.add_argument("--volume-as-slices", action="store_true",
                     help="segment 3D volumes that are not TIFF stacks (NIfTI, ...) slice by slice")
    args = parser.parse_args(argv)

    from monai_unet2015.bundle.errors import TRACEBACK_ENV, user_error_message

    try:
        segment(args.input, args.output, args.bundle, args.weights, args.tta, args.roi_size, args.threshold,
                args.device, args.volume_as_slices)
    except Exception as e:
        message = user_error_message(e)
        if message is None or os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        logging.shutdown()
        for bundle_key, option in (("--dataset_dir", "--input"), ("--ckpt_path", "--weights")):
            message = message.replace(bundle_key, option)  # the CLI's names of the bundle's keys
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

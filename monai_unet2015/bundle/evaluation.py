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

"""Score candidate weights of a bundle on its validation or its test split, with the bundle's ``evaluate.json``.

A bundle names its two held-apart splits in its configs: the **validation** split in ``train.json``
(``val_indices`` / ``val_frames``: what chooses the weights and the thresholds) and the **test** split as the
default of ``evaluate.json`` (``eval_indices`` / ``eval_frames``: scored for the record, after the choice).
:py:func:`split_overrides` reads them, so a candidate round never repeats a bundle's frame numbers by hand.
:py:func:`candidate_weights` writes a candidate (a checkpoint, its weight EMA, or the mean of several) as the
float16 file the bundle would ship, and :py:func:`evaluate_weights` runs ``evaluate.json`` on it and returns the
metrics together with every threshold sweep (per-threshold errors) the evaluation computed.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import BundleInputError

__all__ = ["SPLITS", "bundle_parser", "split_overrides", "candidate_weights", "evaluate_weights"]

#: The splits :py:func:`split_overrides` knows.
SPLITS = ("validation", "test")


def _read(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def bundle_parser(
    bundle_root: str | Path, files: Sequence[str] = ("inference.json",), overrides: dict | None = None
) -> Any:
    """A ``ConfigParser`` of the bundle's ``configs/<files>`` merged in order, ``bundle_root`` and ``overrides`` set.

    What ``python -m monai.bundle run --config_file "['configs/a.json', ...]" --bundle_root ROOT --key value``
    parses, for scripts that run a bundle's configs from Python.

    Examples::

        >>> from pathlib import Path
        >>> import monai_unet2015
        >>> root = Path(monai_unet2015.__file__).resolve().parents[1] / "bundles" / "unet2015_em_membranes"
        >>> parser = bundle_parser(root, ["inference.json", "train.json"], {"val_indices": [3]})
        >>> parser.get_parsed_content("val_indices"), parser["bundle_root"] == str(root)
        ([3], True)
    """
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(Path(bundle_root) / "configs" / f) for f in files])
    parser.update({"bundle_root": str(bundle_root), **(overrides or {})})
    return parser


def split_overrides(bundle_root: str | Path, split: str = "test") -> dict:
    """The ``evaluate.json`` overrides that make it score the bundle's ``split``.

    ``"test"`` is ``evaluate.json``'s own default (no override); ``"validation"`` sets each ``eval_<x>`` of
    ``evaluate.json`` to the value of ``val_<x>`` in ``train.json`` (EM: ``eval_indices`` = ``val_indices``;
    DIC-HeLa: ``eval_frames`` = ``val_frames``).

    Args:
        bundle_root: the bundle folder (with ``configs/evaluate.json`` and ``configs/train.json``).
        split: ``"validation"`` or ``"test"``.

    Examples::

        >>> from pathlib import Path
        >>> import monai_unet2015
        >>> bundles = Path(monai_unet2015.__file__).resolve().parents[1] / "bundles"
        >>> split_overrides(bundles / "unet2015_em_membranes", "validation")
        {'eval_indices': [20, 21]}
        >>> split_overrides(bundles / "unet2015_dic_hela", "test")
        {}
    """
    from monai.utils import look_up_option

    split = look_up_option(split, SPLITS)
    if split == "test":
        return {}
    root = Path(bundle_root)
    evaluate = _read(root / "configs" / "evaluate.json")
    train = _read(root / "configs" / "train.json")
    keys = [k for k in evaluate if k.startswith("eval_") and f"val_{k[len('eval_'):]}" in train]
    if not keys:
        raise BundleInputError(
            f"bundle_root={str(root)!r}: no eval_<x> key of configs/evaluate.json has a val_<x> in configs/train.json,"
            " so its validation split is not known."
        )
    parser = bundle_parser(root, ["inference.json", "train.json"])
    return {k: parser.get_parsed_content(f"val_{k[len('eval_'):]}") for k in keys}


def candidate_weights(spec: str | Path, path: str | Path, overwrite: bool = False) -> dict:
    """Write the candidate ``spec`` as float16 weights to ``path``; returns their UNet2015 arguments.

    ``spec`` is a checkpoint or weights file (``runs/x/checkpoints/checkpoint_final.pt``, a bundle's
    ``models/model.pt``), the same followed by ``#ema_model`` for the weight EMA a training with
    ``ema_momentum`` saved, or several of these joined by ``+`` for the mean of their weights (as
    :py:func:`~monai_unet2015.bundle.export_weights` with a list; each file with its own entry, e.g.
    ``models/model.pt+runs/x/checkpoints/checkpoint_final.pt#ema_model``).

    Examples::

        >>> import tempfile, torch
        >>> from monai_unet2015.networks.nets import UNet2015
        >>> d = tempfile.mkdtemp()
        >>> a, b = UNet2015(features=(4, 8, 16)), UNet2015(features=(4, 8, 16))
        >>> torch.save({"model": a.state_dict(), "ema_model": b.state_dict()}, f"{d}/ckpt.pt")
        >>> candidate_weights(f"{d}/ckpt.pt#ema_model", f"{d}/ema.pt")["features"]
        [4, 8, 16]
        >>> _ = candidate_weights(f"{d}/ckpt.pt+{d}/ema.pt", f"{d}/mean.pt")  # the mean of the two
        >>> mean = torch.load(f"{d}/mean.pt", weights_only=True)["final_conv.bias"].float()
        >>> torch.allclose(mean, (a.final_conv.bias + b.final_conv.bias).detach() / 2, atol=1e-3)
        True
    """
    from .checkpoint import export_weights

    parts = [p.strip() for p in str(spec).split("+")]
    entries = [p.partition("#")[2] or "model" for p in parts]
    files = [p.partition("#")[0] for p in parts]
    if not all(files):
        raise BundleInputError(f"candidate {spec!r}: an empty file name; expected FILE[#ema_model][+FILE...].")
    if len(files) == 1:
        return export_weights(files[0], path, overwrite=overwrite, entry=entries[0])
    return export_weights(files, path, overwrite=overwrite, entry=entries)


def evaluate_weights(
    bundle_root: str | Path, weights: str | Path, split: str = "test", tta: bool = False, overrides: dict | None = None
) -> dict:
    """Run the bundle's ``evaluate.json`` with ``weights`` on its ``split``.

    The network's width is read from the weights (``features`` of
    :py:func:`~monai_unet2015.bundle.unet2015_args_from_state_dict`) unless ``overrides`` sets it.

    Args:
        bundle_root: the bundle folder.
        weights: a weights file the bundle's ``ckpt_path`` accepts (:py:func:`candidate_weights` writes one).
        split: ``"validation"`` or ``"test"`` (:py:func:`split_overrides`).
        tta: average the 8 flips/rotations (``evaluate.json``'s ``tta``).
        overrides: further ``evaluate.json`` overrides, e.g. ``{"dataset_dir": ...}``.

    Returns:
        ``{"metrics": {name: value}, "sweeps": {name: {"thresholds": [...], "errors": [...]}}}``: every metric
        of the evaluation, and the per-threshold errors of each metric that swept thresholds (its thresholds
        are those of the probability the metric reads: the EM bundle's metrics read the cell probability, so
        its mask ``threshold`` on the membrane probability is 1 minus theirs).
    """
    from .checkpoint import read_state_dict, unet2015_args_from_state_dict

    config = {**split_overrides(bundle_root, split), **(overrides or {})}
    if "features" not in config:  # the width of the weights (read again by evaluate.json's CheckpointLoader)
        config["features"] = unet2015_args_from_state_dict(read_state_dict(weights, key="weights"))["features"]
    with tempfile.TemporaryDirectory() as out:
        parser = bundle_parser(bundle_root, ["inference.json", "evaluate.json"],
                               {**config, "ckpt_path": str(weights), "tta": bool(tta), "output_dir": out})
        parser.get_parsed_content("initialize")
        evaluator = parser.get_parsed_content("evaluator")
        evaluator.run()
        details = getattr(evaluator.state, "metric_details", {}) or {}
    sweeps = {}
    for name, summary in details.items():
        if name.endswith("_summary") and isinstance(summary, dict) and "errors" in summary and "thresholds" in summary:
            sweeps[name[: -len("_summary")]] = {
                "thresholds": [round(float(t), 6) for t in summary["thresholds"]],
                "errors": [float(e) for e in summary["errors"]],
            }
    return {"metrics": {k: float(v) for k, v in evaluator.state.metrics.items()}, "sweeps": sweeps}

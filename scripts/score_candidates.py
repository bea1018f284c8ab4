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

"""Score candidate weights of a bundle on its validation split (the choice) or its test split (the record).

Each candidate ``NAME=SPEC`` is written as the float16 file the bundle would ship
(:py:func:`monai_unet2015.bundle.candidate_weights`: ``SPEC`` is a checkpoint or weights file, ``FILE#ema_model``
for a training's weight EMA, ``FILE+FILE#ema_model+...`` for the mean of their weights) and scored by the bundle's
``evaluate.json`` on the split, with and without the 8 flips/rotations (``--tta``). One JSON line per candidate
and mode (every metric, and the per-threshold errors of each threshold sweep), then a table of the key metrics.

Score the validation split first and write the decision down; score ``--split test`` after it, for the record:
figures on data that chose the weights or the threshold are not evidence.

Example::

    python scripts/score_candidates.py --bundle bundles/unet2015_em_membranes --split validation \\
        shipped=bundles/unet2015_em_membranes/models/model.pt \\
        ema=bundles/unet2015_em_membranes/runs/r24/checkpoints/checkpoint_final.pt#ema_model
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

#: metrics shown in the table, where the evaluation has them
TABLE = ("rand_error", "rand_error_at_threshold", "pixel_error", "pixel_error_at_threshold", "seg", "iou")


def main(argv: list[str] | None = None) -> list[dict]:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--bundle", type=Path, required=True, help="the bundle folder")
    args.add_argument("--split", default="validation", choices=["validation", "test"])
    args.add_argument("--tta", default="both", choices=["both", "true", "false"],
                      help="with the 8 flips/rotations averaged, one pass, or both (default)")
    args.add_argument("--dataset_dir", default=None, help="the bundle's dataset folder, if not its default")
    args.add_argument("candidates", nargs="+", metavar="NAME=SPEC")
    opt = args.parse_args(argv)
    pairs = [c.partition("=") for c in opt.candidates]
    bad = [c for c, (name, eq, spec) in zip(opt.candidates, pairs) if not (name and eq and spec)]
    if bad:
        raise SystemExit(f"candidates {bad}: expected NAME=FILE[#ema_model][+FILE...].")
    from monai_unet2015.bundle.evaluation import candidate_weights, evaluate_weights

    overrides = {} if opt.dataset_dir is None else {"dataset_dir": str(Path(opt.dataset_dir).resolve())}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, _, spec in pairs:
            weights = Path(tmp) / f"{name}.pt"
            features = candidate_weights(spec, weights, overwrite=True)["features"]
            for tta in {"both": (True, False), "true": (True,), "false": (False,)}[opt.tta]:
                result = evaluate_weights(opt.bundle, weights, opt.split, tta=tta,
                                          overrides={**overrides, "features": features})
                row = {"name": name, "spec": spec, "features": features, "split": opt.split, "tta": tta, **result}
                print(json.dumps(row), flush=True)
                rows.append(row)
    keys = [k for k in TABLE if any(k in r["metrics"] for r in rows)]
    print(f"\n{opt.split} split of {opt.bundle.name}\n")
    print("| candidate | TTA | " + " | ".join(keys) + " |")
    print("|---|---|" + "---|" * len(keys))
    for r in rows:
        cells = [f"{r['metrics'][k]:.4f}" if k in r["metrics"] else "" for k in keys]
        print(f"| {r['name']} | {'yes' if r['tta'] else 'no'} | " + " | ".join(cells) + " |")
    return rows


if __name__ == "__main__":
    main()

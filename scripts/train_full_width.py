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

"""Train the paper's full width (features 64-1024) of the bundles on one GPU within a time budget, choose, score.

For each bundle (``--bundles em dic``), with its ``configs/train_gpu.json`` merged over ``train.json``:

1. calibrate: a short run of ``--calibrate_iters`` iterations (data loading included) gives the seconds per
   iteration on this machine;
2. train: ``epochs`` = what fits in ``--minutes`` at that speed (the cosine schedule spans exactly that run),
   under ``runs/full_width`` of the bundle (``--run_name``);
3. choose between the final weights and their EMA by the validation split (EM: Rand error with TTA on slices
   20-21, lower wins; DIC-HeLa: SEG on frame 39, higher wins), as the CPU-trained weights were chosen;
4. score the chosen weights on the test split (EM 22-24, DIC-HeLa 21 and 54) with and without TTA;
5. write them to ``--out`` as float16 (``<bundle>_full_width.pt``, split into ``--parts`` files when given, to
   fit a transfer limit) and print one JSON summary line (figures, epochs, seconds, sha256).

Nothing is written to a bundle's ``models/``; shipping the file is a separate, deliberate step. On a CPU the
same script runs at a CPU's speed: ``--features 4 8 16 32 64 --iters_per_epoch 4 --calibrate_iters 3
--minutes 0.05`` tests the whole path in a few minutes.

Example::

    python scripts/train_full_width.py --bundles em dic --minutes 3 --out /tmp/full_width
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL_WIDTH = [64, 128, 256, 512, 1024]
#: bundle -> (folder, its dataset under --data, key metric, higher is better); the splits are the bundles' own
#: (``monai_unet2015.bundle.split_overrides``: validation from train.json, test = evaluate.json's default)
BUNDLES = {
    "em": ("unet2015_em_membranes", "isbi2012/train", "rand_error", False),
    "dic": ("unet2015_dic_hela", "dic-hela", "seg", True),
}


def train(root: Path, overrides: dict) -> tuple[Path, list[float]]:
    """Run the bundle's training with ``overrides``; returns the run folder and the end time of every iteration."""
    from ignite.engine import Events

    from monai_unet2015.bundle import bundle_parser

    parser = bundle_parser(root, ["inference.json", "train.json", "train_gpu.json"], overrides)
    parser.get_parsed_content("initialize")
    stamps: list[float] = []
    trainer = parser.get_parsed_content("train#trainer")
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: stamps.append(time.perf_counter()))
    parser.get_parsed_content("run")
    return Path(parser.get_parsed_content("output_dir")), stamps


def split(path: Path, parts: int) -> list[str]:
    """Cut ``path`` into ``parts`` files ``path.partK`` of near-equal size (``cat path.part* > path`` joins them)."""
    data = path.read_bytes()
    size = -(-len(data) // parts)
    names = []
    for k in range(parts):
        part = path.with_name(f"{path.name}.part{k}")
        part.write_bytes(data[k * size:(k + 1) * size])
        names.append(part.name)
    path.unlink()
    return names


def main(argv: list[str] | None = None) -> dict:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--bundles", nargs="+", default=["em", "dic"], choices=sorted(BUNDLES))
    args.add_argument("--minutes", type=float, default=3.0, help="training time of each bundle")
    args.add_argument("--calibrate_iters", type=int, default=30)
    args.add_argument("--iters_per_epoch", type=int, default=None, help="default: the bundle's train_gpu.json")
    args.add_argument("--features", type=int, nargs=5, default=FULL_WIDTH, help="default: the paper's 64 ... 1024")
    args.add_argument("--run_name", default="full_width")
    args.add_argument("--runs_dir", type=Path, default=None, help="runs go to RUNS_DIR/<bundle>/<run_name> (default: "
                      "the bundle's runs/<run_name>)")
    args.add_argument("--out", type=Path, required=True)
    args.add_argument("--data", type=Path, default=None, help="the datasets' folder (default: the bundles' ../shared/data)")
    args.add_argument("--parts", type=int, default=1, help="split each weights file into this many files")
    opt = args.parse_args(argv)
    if opt.minutes <= 0 or opt.calibrate_iters < 2 or opt.parts < 1:
        raise SystemExit("--minutes must be > 0, --calibrate_iters >= 2 and --parts >= 1.")
    from monai_unet2015.bundle import bundle_parser, evaluate_weights, export_weights

    opt.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name in opt.bundles:
        folder, dataset, key, higher = BUNDLES[name]
        root = ROOT / "bundles" / folder
        started = time.perf_counter()
        width = {"features": list(opt.features)}  # and the data, for every run and evaluation
        if opt.data is not None:
            width["dataset_dir"] = str((opt.data / dataset).resolve())
        iters_per_epoch = opt.iters_per_epoch or bundle_parser(
            root, ["inference.json", "train.json", "train_gpu.json"], {}).get_parsed_content("num_iters_per_epoch")
        with tempfile.TemporaryDirectory() as runs:  # the calibration run leaves nothing behind
            _, stamps = train(root, {**width, "runs_dir": runs, "run_name": "calibration", "epochs": 1,
                                     "val_interval": 10**6, "num_iters_per_epoch": opt.calibrate_iters})
        per_iter = statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:])) if len(stamps) > 2 else (
            stamps[-1] - stamps[0])
        # 10 % for validation, checkpoints and the slower first iterations
        epochs = max(1, int(0.9 * opt.minutes * 60 / (per_iter * iters_per_epoch)))
        runs_dir = {} if opt.runs_dir is None else {"runs_dir": str(opt.runs_dir.resolve() / folder)}
        run_dir, _ = train(root, {**width, **runs_dir, "run_name": opt.run_name, "epochs": epochs,
                                  "num_iters_per_epoch": iters_per_epoch})
        trained = time.perf_counter() - started
        final = run_dir / "checkpoints" / "checkpoint_final.pt"
        cands = {"final": opt.out / f"{name}_final.pt", "ema": opt.out / f"{name}_ema.pt"}
        export_weights(final, cands["final"], overwrite=True)
        export_weights(final, cands["ema"], entry="ema_model", overwrite=True)
        scores = {c: evaluate_weights(root, p, "validation", tta=True, overrides=width)["metrics"][key]
                  for c, p in cands.items()}
        chosen = (max if higher else min)(scores, key=scores.get)
        test = {f"tta_{tta}": evaluate_weights(root, cands[chosen], "test", tta=tta, overrides=width)["metrics"]
                for tta in (True, False)}
        shipped = opt.out / f"{folder}_full_width.pt"
        cands[chosen].replace(shipped)
        for p in cands.values():
            p.unlink(missing_ok=True)
        sha = hashlib.sha256(shipped.read_bytes()).hexdigest()
        files = split(shipped, opt.parts) if opt.parts > 1 else [shipped.name]
        summary[name] = {"features": width["features"], "epochs": epochs, "iters_per_epoch": iters_per_epoch,
                         "seconds_per_iter": per_iter, "seconds": round(time.perf_counter() - started, 1), "train_seconds": round(trained, 1),
                         "validation": scores, "chosen": chosen, "test": test, "sha256": sha, "files": files}
        print(json.dumps({name: summary[name]}), flush=True)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()

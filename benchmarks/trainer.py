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

"""A bundle's whole trainer iteration against the bare training step of its network, in the same run.

    python benchmarks/trainer.py [BUNDLE] [--iters 20] [--set KEY=VALUE ...] [--threads N]

The trainer is the bundle's own (``inference.json`` + ``train.json`` + ``train_cpu.json``, into a temporary run
folder, validation off): data loading, augmentation, the weight map, ``WeightMapTrainer`` with its
per-iteration handlers (logging, TensorBoard). Its time per iteration runs from fetching the batch to the end of
the iteration's handlers (median, the first iterations left out as warm-up). The bare step is forward, loss,
backward and optimiser step of the same network, loss and optimiser on a fixed random tile of the same size,
run after every trainer iteration, so that both see the same machine. The per-epoch checkpoint is not timed.
``--set`` overrides config keys as on the ``monai.bundle run`` command line, e.g. ``--set num_workers=0`` or
``--set amp=false channels_last=false`` (float32 in the default layout; the bundles' default ``auto`` picks bf16
autocast and channels_last where they measure faster, and the bare step runs in the trainer's precision).
One validation pass is timed too: per training iteration it costs its time divided by
``val_interval * num_iters_per_epoch``.
"""

from __future__ import annotations

import argparse
import ast
import statistics
import tempfile
import time
from pathlib import Path

import torch
from ignite.engine import Events
from monai.bundle import ConfigParser

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


class BareStep:
    """Forward, loss, backward and optimiser step on a fixed random tile, with the trainer's network, loss,
    optimiser and precision (its ``amp_dtype`` autocast, float32 loss): the reference a trainer iteration is
    compared with."""

    def __init__(self, trainer, size: int, weighted: bool) -> None:
        self.net, self.opt, self.loss_fn = trainer.network, trainer.optimizer, trainer.loss_function
        self.dtype = getattr(trainer, "amp_dtype", None)
        device = next(self.net.parameters()).device
        self.device_type = device.type
        self.x = torch.rand(1, 1, size, size, device=device)
        with torch.no_grad():
            out = self.net(self.x).shape[2:]
        self.label = torch.randint(0, 2, (1, 1, *out), device=device).float()
        self.weight = 1 + 9 * torch.rand(1, 1, *out, device=device) if weighted else None

    def __call__(self) -> float:
        self.net.train()
        start = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None):
            pred = self.net(self.x)
        pred = pred.float()
        extra = () if self.weight is None else (self.weight,)
        loss = self.loss_fn(pred, self.label, *extra)
        loss.backward()
        self.opt.step()
        return time.perf_counter() - start


class BundleTrainer:
    """A bundle's own trainer (``inference.json`` + ``train.json`` + ``train_cpu.json``) for a short run in
    ``runs_dir``, validation off: ``epochs`` epochs of ``iters`` iterations, the bundle's run steps but the last
    (precision, checkpoint saver, ...) done. ``overrides``: ``KEY=VALUE`` strings as on the command line."""

    def __init__(self, bundle: str, overrides: list[str], iters: int, runs_dir: str, epochs: int = 1) -> None:
        root = BUNDLES / bundle
        parser = ConfigParser()
        parser.read_config([str(root / "configs" / f) for f in ("inference.json", "train.json", "train_cpu.json")])
        for item in overrides:
            key, value = item.split("=", 1)
            try:
                parser[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                parser[key] = value
        # the recipe's validation schedule, before the short run below replaces the epochs
        self.val_interval, self.per_epoch = parser["val_interval"], parser["num_iters_per_epoch"]
        parser["bundle_root"] = str(root)
        parser["runs_dir"] = runs_dir
        parser["run_name"] = "bench"
        parser["epochs"] = epochs
        parser["num_iters_per_epoch"] = iters
        parser["train#handlers#validation#_disabled_"] = True
        parser.get_parsed_content("initialize")
        for k in range(len(parser["run"]) - 1):  # the bundle's run steps (checkpoint saver, ...) but the last
            parser.get_parsed_content(f"run#{k}")
        self.parser = parser
        self.trainer = parser.get_parsed_content("train#trainer")
        self.weighted = parser.get_parsed_content("flags#use_weight_map")
        self.size = parser.get_parsed_content("train_roi_size")
        self.num_workers = parser.get_parsed_content("num_workers")

    def attach_timing(self, bare: bool = True) -> None:
        """Records every iteration's time, from fetching the batch to the end of its handlers, in
        ``iteration_times``; with ``bare``, one :py:class:`BareStep` after every iteration in ``bare_times``, so
        that load and clock changes hit both alike."""
        self.iteration_times: list[float] = []
        self.bare_times: list[float] = []
        step = BareStep(self.trainer, self.size, self.weighted) if bare else None
        start: list[float] = []
        self.trainer.add_event_handler(Events.GET_BATCH_STARTED, lambda e: start.append(time.perf_counter()))

        def done(engine) -> None:
            self.iteration_times.append(time.perf_counter() - start[-1])
            if step is not None:
                self.bare_times.append(step())

        self.trainer.add_event_handler(Events.ITERATION_COMPLETED, done)

    def validation_seconds(self) -> float:
        """One validation pass (the bundle's evaluator) and its share per training iteration of the recipe."""
        evaluator = self.parser.get_parsed_content("validate#evaluator")
        t0 = time.perf_counter()
        evaluator.run()
        return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", nargs="?", default="unet2015_em_membranes")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-validation", action="store_true", help="skip timing a validation pass")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = BundleTrainer(args.bundle, args.set, args.iters, tmp)
        trainer, parser = bundle.trainer, bundle.parser
        bundle.attach_timing()
        start = time.perf_counter()
        trainer.run()
        total = time.perf_counter() - start
        gaps = bundle.iteration_times  # batch fetch + iteration + handlers
        warm = min(3, len(gaps) - 1)
        t_iter = statistics.median(gaps[warm:])
        t_bare = statistics.median(bundle.bare_times[warm:])
        loader = parser.get_parsed_content("train#dataloader")
        it, t_data = iter(loader), []
        next(it)
        for _ in range(min(args.iters, len(loader) - 1)):
            t0 = time.perf_counter()
            next(it)
            t_data.append(time.perf_counter() - t0)
        print(f"{args.bundle}: {torch.get_num_threads()} threads, tile {bundle.size}, weight map {bundle.weighted}, "
              f"num_workers {bundle.num_workers}, overrides {args.set or 'none'}, amp_dtype {trainer.amp_dtype}")
        print(f"  trainer iteration  {t_iter:.3f} s (median of {len(gaps) - warm}, batch fetch included; "
              f"run {total:.1f} s with the bare steps)")
        print(f"  bare step          {t_bare:.3f} s   -> trainer / bare = {t_iter / t_bare:.2f}x")
        print(f"  one batch alone    {statistics.median(t_data):.3f} s (data loading and augmentation, median)")
        if not args.no_validation:
            t_val = bundle.validation_seconds()
            per_iter = t_val / (bundle.val_interval * bundle.per_epoch)
            print(f"  one validation     {t_val:.1f} s, every {bundle.val_interval} x {bundle.per_epoch} iterations: "
                  f"+{per_iter:.3f} s per iteration -> {(t_iter + per_iter) / t_bare:.2f}x the bare step")
            print(f"  iterations per hour: {3600 / (t_iter + per_iter):.0f} (bare step alone: {3600 / t_bare:.0f})")


if __name__ == "__main__":
    main()

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

"""Training speed of UNet2015 in float32 against bf16 autocast and channels_last, alternating in the same run:
one bare step, or a bundle's whole trainer iteration.

    python benchmarks/training.py [--features 16 32 64 128 256] [--size 572] [--steps 10] [--threads N]
                                  [--variants fp32 fp32-channels-last bf16 bf16-channels-last]
    python benchmarks/training.py --trainer [BUNDLE] [--features ...] [--rounds 3] [--block 4] [--threads N]
                                  [--set KEY=VALUE ...] [--no-bare] [--no-validation]

Bare step: forward (under ``torch.autocast`` for the bf16 variants), weighted cross-entropy in float32,
backward, Adam step, on a 572 x 572 tile with batch 1. bf16 variants are left out on CPUs without native bf16
(AMX / AVX512-BF16), where they run ~250x slower; name them in ``--variants`` to time them anyway.

``--trainer``: the bundle's own trainer (``inference.json`` + ``train.json`` + ``train_cpu.json``, see
``benchmarks/trainer.py``), built twice: *before* = ``amp=false channels_last=false`` (float32, the default
layout: the recipe before issue 15) and *after* = the bundles' default ``amp=auto channels_last=auto`` (what
``monai_unet2015.engines.choose_precision`` picks on this machine, logged). They train in alternating blocks of
``--block`` iterations, ``--rounds`` blocks each; the first iteration of every block is left out as warm-up.
Time per iteration = from fetching the batch to the end of the iteration's handlers (data loading, augmentation,
the weight map, logging included; the per-epoch checkpoint not); after every iteration one bare step in the
same precision (``--no-bare`` skips it). One validation pass of each is timed and spread over the
``val_interval`` x ``num_iters_per_epoch`` iterations it serves: iterations per hour include it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from monai_unet2015.engines import cpu_has_native_bf16
from monai_unet2015.losses import WeightedCrossEntropyLoss
from monai_unet2015.networks.nets import UNet2015

from trainer import BundleTrainer  # benchmarks/trainer.py, beside this script (its folder is sys.path[0])

VARIANTS = {  # name: (autocast dtype, channels_last)
    "fp32": (None, False),
    "fp32-channels-last": (None, True),
    "bf16": (torch.bfloat16, False),
    "bf16-channels-last": (torch.bfloat16, True),
}


def make_step(features, size: int, dtype: torch.dtype | None, channels_last: bool):
    torch.manual_seed(0)
    net = UNet2015(features=tuple(features))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    loss_fn = WeightedCrossEntropyLoss()
    x = torch.rand(1, 1, size, size).to(memory_format=fmt)
    out = net.output_size(size)
    label = (torch.rand(1, 1, *out) > 0.5).float()
    weight_map = 1 + 9 * torch.rand(1, 1, *out)

    def step() -> float:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            pred = net(x)
        loss = loss_fn(pred.float(), label, weight_map)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    return step


def bare_steps(args) -> None:
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    names = args.variants or [k for k, (dtype, _) in VARIANTS.items() if dtype is None or cpu_has_native_bf16()]
    steps = {k: make_step(args.features, args.size, *VARIANTS[k]) for k in names}
    times: dict[str, list[float]] = {k: [] for k in steps}
    for fn in steps.values():  # warm-up: oneDNN primitives
        fn()
    for _ in range(args.steps):  # alternate, so that load from other processes hits all alike
        for k, fn in steps.items():
            times[k].append(fn())
    print(f"UNet2015 features={args.features}, {args.size}x{args.size} tile, batch 1, {torch.get_num_threads()} "
          f"threads, native bf16: {cpu_has_native_bf16() or 'none'}")
    ref = statistics.median(times[names[0]])
    for k, t in times.items():
        med = statistics.median(t)
        print(f"  {k:20s} median {med:.3f} s/step (min {min(t):.3f}), {ref / med:.2f}x {names[0]}, "
              f"{3600 / med:.0f} steps/hour")
    print_machine_load(start_cpu, time.perf_counter() - start_wall)


def trainer_iterations(args) -> None:
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    common = [f"features={list(args.features)}", *args.set]
    settings = {"before": ["amp=false", "channels_last=false"], "after": ["amp=auto", "channels_last=auto"]}
    with tempfile.TemporaryDirectory() as tmp:
        bundles = {}
        for name, extra in settings.items():
            bundles[name] = BundleTrainer(args.trainer, common + extra, args.block, f"{tmp}/{name}", args.rounds)
            bundles[name].attach_timing(bare=not args.bare_off)
        start = time.perf_counter()
        for r in range(args.rounds):  # alternate blocks: load and clock changes hit both alike
            for bundle in bundles.values():
                bundle.trainer.state.max_epochs = r + 1  # ignite continues the run for one more block
                bundle.trainer.run()
        total = time.perf_counter() - start
        any_bundle = bundles["before"]
        print(f"{args.trainer}: features {list(args.features)}, {torch.get_num_threads()} threads, tile "
              f"{any_bundle.size}, weight map {any_bundle.weighted}, num_workers {any_bundle.num_workers}, "
              f"overrides {args.set or 'none'}; {args.rounds} alternating blocks of {args.block} iterations "
              f"each ({total:.0f} s)")
        result = {}
        for name, bundle in bundles.items():
            kept = [t for i, t in enumerate(bundle.iteration_times) if i % args.block]  # warm-up of each block out
            t_iter = statistics.median(kept)
            line = (f"  {name:6s} amp_dtype {bundle.trainer.amp_dtype!s:14s} trainer iteration {t_iter:.3f} s "
                    f"(min {min(kept):.3f})")
            if bundle.bare_times:
                t_bare = statistics.median([t for i, t in enumerate(bundle.bare_times) if i % args.block])
                line += f", bare step {t_bare:.3f} s ({t_iter / t_bare:.2f}x)"
            per_iter = 0.0
            if not args.no_validation:
                t_val = bundle.validation_seconds()
                per_iter = t_val / (bundle.val_interval * bundle.per_epoch)
                line += f", validation {t_val:.1f} s (+{per_iter:.3f} s per iteration)"
            result[name] = 3600 / (t_iter + per_iter)
            print(line + f" -> {result[name]:,.0f} iterations/hour")
            if name == "after":
                print(f"         {bundle.parser.get_parsed_content('precision').reason}")
        print(f"  after / before: {result['after'] / result['before']:.2f}x the iterations per hour")
    print_machine_load(start_cpu, time.perf_counter() - start_wall)


def print_machine_load(start_cpu: float, wall: float) -> None:
    """How much of the machine this process had: other processes on the same cores slow every variant."""
    own = time.process_time() - start_cpu
    print(f"  this process used {own / wall:.2f} of {os.cpu_count()} CPUs over {wall:.0f} s; load average "
          f"{os.getloadavg()[0]:.2f} (1 min) at the end: more than its threads means other work shared the cores")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    p.add_argument("--size", type=int, default=572)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None)
    p.add_argument("--trainer", nargs="?", const="unet2015_em_membranes", default=None, metavar="BUNDLE",
                   help="time the bundle's whole trainer iteration, before / after (default bundle: EM)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--block", type=int, default=4)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-bare", dest="bare_off", action="store_true", help="--trainer: no bare step after each")
    p.add_argument("--no-validation", action="store_true", help="--trainer: skip timing a validation pass")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer_iterations(args) if args.trainer else bare_steps(args)


if __name__ == "__main__":
    main()

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

"""Time of one training step (forward, weighted cross-entropy, backward, Adam step) of UNet2015 on a 572x572
tile with batch 1, in the default memory format and in channels_last, alternating in the same run.

    python benchmarks/training.py [--features 16 32 64 128 256] [--size 572] [--steps 10] [--threads N]

The bundles' CPU recipe (``configs/train_cpu.json``) trains the narrow default width with these steps.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from monai_unet2015.losses import WeightedCrossEntropyLoss
from monai_unet2015.networks.nets import UNet2015


def make_step(features, size: int, channels_last: bool):
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
        loss = loss_fn(net(x), label, weight_map)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    p.add_argument("--size", type=int, default=572)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = {"default": make_step(args.features, args.size, False), "channels_last": make_step(args.features, args.size, True)}
    times: dict[str, list[float]] = {k: [] for k in steps}
    for k, fn in steps.items():  # warm-up: oneDNN primitives
        fn()
    for _ in range(args.steps):  # alternate, so that load from other processes hits both alike
        for k, fn in steps.items():
            times[k].append(fn())
    print(f"UNet2015 features={args.features}, {args.size}x{args.size} tile, batch 1, {torch.get_num_threads()} threads")
    ref = statistics.median(times["default"])
    for k, t in times.items():
        med = statistics.median(t)
        print(f"  {k:14s} median {med:.3f} s/step (min {min(t):.3f}), {ref / med:.2f}x the default format")


if __name__ == "__main__":
    main()

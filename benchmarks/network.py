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

"""Forward time of the default UNet2015 on a 572x572 tile, fp32 and bf16 autocast, against this machine's
matmul throughput measured in the same run.

    python benchmarks/network.py [--size 572] [--repeats 5] [--device cpu] [--variants fp32 ...]

On a CPU without bf16 hardware (AVX2 only) the bf16 pass takes several minutes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from monai_unet2015.networks.nets import UNet2015


def _timed(fn, repeats: int, sync, warmup: bool = True) -> list[float]:
    if warmup:  # oneDNN primitive creation, CUDA context
        fn()
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def matmul_tflops(dtype: torch.dtype, device: str, n: int, sync) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = min(_timed(lambda: a @ b, 3, sync))
    return 2 * n**3 / t / 1e12


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=572)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--full-bf16", action="store_true", help="warm-up and repeat the CPU bf16 run too")
    p.add_argument("--variants", nargs="*", help="subset of: fp32 fp32-channels-last bfloat16-autocast (float16 on GPU)")
    args = p.parse_args()
    dev = args.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    torch.manual_seed(0)
    net = UNet2015().eval().to(dev)
    x = torch.randn(1, 1, args.size, args.size, device=dev)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(x)
    flops = fc.get_total_flops()
    print(f"device: {dev}, threads: {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"UNet2015 default, input {args.size}x{args.size} -> {net.output_size(args.size)}: {flops / 1e9:.1f} GFLOP", flush=True)
    half = torch.bfloat16 if dev == "cpu" else torch.float16
    variants = {
        "fp32": (None, False),
        "fp32-channels-last": (None, True),
        f"{str(half).split('.')[-1]}-autocast": (half, False),
    }
    chosen = args.variants or list(variants)
    unknown = sorted(set(chosen) - set(variants))
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; choose from {list(variants)}")
    print(f"{'variant':<22}{'median s':>10}{'TFLOP/s':>10}{'matmul peak TFLOP/s':>22}{'% of peak':>11}", flush=True)
    for name in chosen:
        dtype, cl = variants[name]
        m = net.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
        xi = x.to(memory_format=torch.channels_last) if cl else x

        def run(m=m, xi=xi, dtype=dtype):
            with torch.no_grad(), torch.autocast(dev.split(":")[0], dtype=dtype or torch.float32, enabled=dtype is not None):
                m(xi)

        # bf16 convolutions have no fast kernel on AVX2-only CPUs (minutes per pass): one cold run there
        slow = dtype is not None and dev == "cpu" and not args.full_bf16
        med = statistics.median(_timed(run, 1 if slow else args.repeats, sync, warmup=not slow))
        peak = matmul_tflops(dtype or torch.float32, dev, 1024 if slow else (2048 if dev == "cpu" else 8192), sync)
        tf = flops / med / 1e12
        print(f"{name:<22}{med:>10.3f}{tf:>10.3f}{peak:>22.3f}{100 * tf / peak:>10.0f}%", flush=True)


if __name__ == "__main__":
    main()

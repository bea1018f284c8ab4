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

"""
Overlap-tile inference benchmark on the default full-width UNet2015 (31 M parameters, depth 5).

In one run, against references measured in the same run:

1. a ``--size`` (512) image, fp32 and bf16 autocast, with the default inferer (memory budget
   1024 MiB: 2x2 tiles of 444x444) and as one 700x700 pass over the whole mirrored image;
2. the FLOP count of that work (``torch.utils.flop_counter`` on the meta device, i.e. no compute) and the
   fp32 and bf16 matmul throughput of this machine, giving the fraction of matmul peak reached;
3. tiling overhead: a ``--tiled-size`` (2048) image tiled with the paper's tiles and with the default
   budget tiles, in FLOPs relative to one pass over the whole mirrored image (too large to run here);
4. peak memory of every run (peak RSS minus the RSS just before the call, which already holds the
   input and the weights; each run in a fresh process), next to the bound: output + ``estimate_tile_bytes``.

bf16: on CPUs without AVX512-BF16/AMX (our AVX2 development machine) bf16 convolutions are tens of
times slower than fp32, so by default bf16 is timed on one 252x252 tile and extrapolated to the 512x512
work by FLOPs (printed as "extrapolated"); ``--bf16 full`` times the real work (several minutes here),
``--bf16 skip`` leaves it out. With CUDA available the same figures are measured on the GPU as well.

Usage::

    .venv/bin/python benchmarks/inference.py            # about 6 minutes on 2 cores
    .venv/bin/python benchmarks/inference.py --quick    # smaller sizes, about 2 minutes
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from monai_unet2015.inferers import OverlapTileInferer, estimate_tile_bytes  # noqa: E402
from monai_unet2015.networks.nets import UNet2015  # noqa: E402

MiB = 2**20


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def _reset_peak_rss() -> int:
    """Reset the peak resident set size (VmHWM) to the current one (Linux) and return the current one."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # no reset possible: the peak then also covers what happened before
        pass
    return _status("VmRSS")


def _network(device: str = "cpu") -> UNet2015:
    torch.manual_seed(0)
    return UNet2015().eval().to(device)


def _inferer(kind: str, amp: str | None, device: str = "cpu") -> OverlapTileInferer:
    if kind == "paper":
        return OverlapTileInferer(roi_size=388, amp_dtype=amp, sw_device=device, device=device)
    if kind == "whole":  # one pass over the whole mirrored image
        return OverlapTileInferer(roi_size=1 << 20, amp_dtype=amp, sw_device=device, device=device)  # > any image
    return OverlapTileInferer(amp_dtype=amp, sw_device=device, device=device)  # default memory budget


def forward_flops(net: UNet2015, input_size: tuple[int, ...]) -> int:
    """FLOPs (2 x multiply-accumulates of the convolutions) of one pass, counted on the meta device."""
    meta = copy.deepcopy(net).to("meta")
    with FlopCounterMode(display=False) as counter:
        meta(torch.empty(1, 1, *input_size, device="meta"))  # the default network has one input channel
    return int(counter.get_total_flops())


def inferer_flops(net: UNet2015, inferer: OverlapTileInferer, image_size: tuple[int, ...]) -> tuple[int, int, tuple]:
    """FLOPs of the tiles ``inferer`` runs on an image, the number of tiles and the tile size."""
    plan = inferer.plan(image_size, net)
    return plan.num_tiles * forward_flops(net, plan.input_size), plan.num_tiles, plan.input_size


def single_pass_flops(net: UNet2015, image_size: tuple[int, ...]) -> tuple[int, tuple]:
    """FLOPs of one pass over the whole mirrored image (the smallest valid size covering it)."""
    size = tuple(net.input_size_for_output(image_size))
    return forward_flops(net, size), size


def matmul_gflops(dtype: torch.dtype, n: int, device: str = "cpu", min_time: float = 1.0) -> float:
    """Best-of throughput of an n x n x n matmul in GFLOP/s."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm-up
    best, spent = float("inf"), 0.0
    while spent < min_time or best == float("inf"):
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        best, spent = min(best, dt), spent + dt
    return 2 * n**3 / best / 1e9


# ------------------------------------------------------------------------------ worker (one run per process)
def worker(spec: dict) -> dict:
    """Run one timed inference in this (fresh) process and report time and memory."""
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    net = _network()
    size = tuple(spec["image_size"])
    x = torch.rand(1, 1, *size)
    if spec["kind"] == "single":  # one pass of the network on a given valid tile (bf16 extrapolation)
        run = lambda: net(x)  # noqa: E731
        amp = spec["amp"]
    else:
        inferer = _inferer(spec["kind"], spec["amp"])
        run = lambda: inferer(x, net)  # noqa: E731
        amp = None  # the inferer applies autocast itself
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if amp else torch.autocast("cpu", enabled=False)
    times = []
    base = _reset_peak_rss()
    with torch.no_grad(), ctx:
        for _ in range(spec["warmup"]):
            run()
        for _ in range(spec["repeats"]):
            t = time.perf_counter()
            y = run()
            times.append(time.perf_counter() - t)
    return {
        "times": times,
        "extra_rss": _status("VmHWM") - base,
        "input_bytes": x.numel() * 4,
        "output_bytes": y.numel() * y.element_size(),
        "threads": torch.get_num_threads(),
    }


def run_worker(spec: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True, env=env, check=False
    )
    if res.returncode != 0:
        raise RuntimeError(f"worker {spec} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ report
def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def cpu_benchmark(args) -> None:
    net = _network()
    size, big = (args.size, args.size), (args.tiled_size, args.tiled_size)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads")

    # (2) machine throughput, measured at the start and at the end of the run (the best counts as peak)
    mm = {
        "fp32": [matmul_gflops(torch.float32, args.mm_size)],
        "bf16": [matmul_gflops(torch.bfloat16, args.mm_size_bf16)],
    }
    runs = []  # name, tiles, flops, seconds, dtype, extra rss, bound

    def add(name, kind, image_size, amp, repeats, warmup):
        inferer = _inferer(kind, amp)
        flops, ntiles, tile = inferer_flops(net, inferer, image_size)
        print(f"running {name} ...", file=sys.stderr, flush=True)
        res = run_worker({"kind": kind, "image_size": image_size, "amp": amp, "repeats": repeats, "warmup": warmup,
                          "threads": args.threads})
        t = min(res["times"])
        bound = res["output_bytes"] + estimate_tile_bytes(tile, 64)
        runs.append([name, f"{ntiles} x {tile[0]}^2", flops, f"{t:.2f}", t, "bf16" if amp else "fp32",
                     f"{res['extra_rss'] / MiB:.0f}", f"{bound / MiB:.0f}"])
        return flops, t

    # (1) the 512x512 image
    f_def, t_def = add(f"{size[0]}^2 fp32, default tiles", "default", size, None, args.repeats, 1)
    f_whole, t_whole = add(f"{size[0]}^2 fp32, one pass (no tiling)", "whole", size, None, args.repeats, 1)
    bf16_line = "bf16 skipped (--bf16 skip)"
    if args.bf16 == "full":
        f16, t16 = add(f"{size[0]}^2 bf16 autocast, default tiles", "default", size, "bfloat16", 1, 0)
        bf16_line = f"bf16 autocast {size[0]}^2: {t16:.1f} s measured, {t16 / t_def:.0f}x the fp32 time"
    elif args.bf16 == "extrapolate":
        tile = (args.bf16_tile, args.bf16_tile)
        f_tile = forward_flops(net, tile)
        print(f"running {tile[0]}^2 bf16 ...", file=sys.stderr, flush=True)
        res = run_worker({"kind": "single", "image_size": tile, "amp": "bfloat16", "repeats": 1, "warmup": 0,
                          "threads": args.threads})
        t_tile = res["times"][0]
        est = f_def * t_tile / f_tile
        runs.append([f"{tile[0]}^2 tile, bf16 autocast (one pass)", f"1 x {tile[0]}^2", f_tile, f"{t_tile:.2f}",
                     t_tile, "bf16", f"{res['extra_rss'] / MiB:.0f}", "-"])
        runs.append([f"{size[0]}^2 bf16 autocast, default tiles (extrapolated)", runs[0][1], f_def, f"~{est:.0f}",
                     est, "bf16", "-", "-"])
        bf16_line = (f"bf16 autocast {size[0]}^2: ~{est:.0f} s extrapolated from one {tile[0]}^2 pass, "
                     f"{est / t_def:.0f}x the fp32 time")
    # (3) tiling overhead on the large image
    single, single_size = single_pass_flops(net, big)
    f_paper, _ = add(f"{big[0]}^2 fp32, paper tiles 572->388", "paper", big, None, 1, 0)
    if args.skip_default_big:
        f_bud = inferer_flops(net, _inferer("default", None), big)[0]
    else:
        f_bud, _ = add(f"{big[0]}^2 fp32, default tiles", "default", big, None, 1, 0)
    mm["fp32"].append(matmul_gflops(torch.float32, args.mm_size))
    mm["bf16"].append(matmul_gflops(torch.bfloat16, args.mm_size_bf16))

    peak = {k: max(v) for k, v in mm.items()}
    print(f"matmul throughput (best of start / end of the run): fp32 {peak['fp32']:.1f} GFLOP/s "
          f"({' / '.join(f'{v:.0f}' for v in mm['fp32'])}, {args.mm_size}^3), bf16 {peak['bf16']:.2f} GFLOP/s "
          f"({' / '.join(f'{v:.2f}' for v in mm['bf16'])}, {args.mm_size_bf16}^3)")
    header = ["run", "tiles", "GFLOP", "time (s)", "GFLOP/s", "% of matmul peak", "extra peak RSS (MiB)", "bound (MiB)"]
    print(_row(header))
    print(_row(["---"] * len(header)))
    for name, tiles, flops, shown, t, dt, rss, bound in runs:
        rate = flops / t / 1e9
        print(_row([name, tiles, f"{flops / 1e9:.0f}", shown, f"{rate:.1f}", f"{100 * rate / peak[dt]:.0f}% ({dt})",
                    rss, bound]))
    print()
    print(f"tiling overhead {size[0]}^2: default tiles {f_def / f_whole:.2f}x the FLOPs of one pass, "
          f"{t_def / t_whole:.2f}x its time")
    print(f"tiling overhead {big[0]}^2 vs one pass over the mirrored image ({single_size[0]}^2 input, "
          f"{single / 1e9:.0f} GFLOP, not run): paper tiles {f_paper / single:.2f}x, "
          f"default tiles {f_bud / single:.2f}x")
    print(bf16_line)
    print(f"goal (512^2 < 1 s with bf16 at >= 60% of bf16 matmul peak): fp32 takes {t_def:.2f} s "
          f"({t_whole:.2f} s as one pass); see the bf16 line above")


def gpu_benchmark(args) -> None:
    dev = "cuda"
    net = _network(dev)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"\nGPU: {torch.cuda.get_device_name()}")
    mm32 = matmul_gflops(torch.float32, 8192, dev)
    mm16 = matmul_gflops(torch.bfloat16, 8192, dev)
    print(f"matmul throughput: fp32 {mm32:.0f} GFLOP/s, bf16 {mm16:.0f} GFLOP/s (8192^3, TF32 off)")
    header = ["run", "tiles", "GFLOP", "time (s)", "GFLOP/s", "% of matmul peak", "peak allocated (MiB)"]
    print(_row(header))
    print(_row(["---"] * len(header)))
    for image, kind in (((args.size,) * 2, "default"), ((args.size,) * 2, "whole"), ((args.tiled_size,) * 2, "paper"),
                        ((args.tiled_size,) * 2, "default")):
        for amp, peak in ((None, mm32), ("bfloat16", mm16)):
            inferer = _inferer(kind, amp, dev)
            flops, ntiles, tile = inferer_flops(net, inferer, image)
            x = torch.rand(1, 1, *image, device=dev)
            with torch.no_grad():
                inferer(x, net)
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                times = []
                for _ in range(3):
                    t = time.perf_counter()
                    inferer(x, net)
                    torch.cuda.synchronize()
                    times.append(time.perf_counter() - t)
            t = min(times)
            print(_row([f"{image[0]}^2 {'bf16' if amp else 'fp32'}, {kind} tiles", f"{ntiles} x {tile[0]}^2",
                        f"{flops / 1e9:.0f}", f"{t:.3f}", f"{flops / t / 1e9:.0f}",
                        f"{100 * flops / t / 1e9 / peak:.0f}%",
                        f"{torch.cuda.max_memory_allocated() / MiB:.0f}"]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="256^2 and 1024^2 images, 188^2 bf16 tile")
    parser.add_argument("--size", type=int, default=None, help="image for (1) and (2), default 512")
    parser.add_argument("--tiled-size", type=int, default=None, help="image for (3), default 2048")
    parser.add_argument("--bf16", choices=("extrapolate", "full", "skip"), default="extrapolate")
    parser.add_argument("--bf16-tile", type=int, default=None, help="tile for the bf16 extrapolation, default 252")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats of the fp32 runs (after a warm-up)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--mm-size", type=int, default=2048)
    parser.add_argument("--mm-size-bf16", type=int, default=512)
    parser.add_argument("--skip-default-big", action="store_true", help="do not time the default tiles on (3)")
    parser.add_argument("--no-gpu", action="store_true")
    parser.add_argument("--worker", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    args.size = args.size or (256 if args.quick else 512)
    args.tiled_size = args.tiled_size or (1024 if args.quick else 2048)
    args.bf16_tile = args.bf16_tile or (188 if args.quick else 252)
    if args.quick:
        args.repeats, args.skip_default_big = 1, True
    start = time.perf_counter()
    cpu_benchmark(args)
    if torch.cuda.is_available() and not args.no_gpu:
        gpu_benchmark(args)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

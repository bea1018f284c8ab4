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

"""Memory and scaling of the out-of-core job (monai_unet2015.inferers.zarr_job) on generated zarr stacks.

    python benchmarks/out_of_core.py [--gib 4 0.5] [--worker-memory 1GiB] [--slice 2048] [--features 2 4]
        [--overhead-slices 8] [--work /tmp/unet2015_ooc]

1. Memory: for each volume size (``--gib``, uint8 slices of ``--slice``^2), the job runs on a LocalCluster of 2
   workers with ``--worker-memory`` each; the peak resident memory of each worker (sampled every 0.2 s) is
   printed against the volume and the limit: it must stay bounded by the chunk working set, not grow with the
   volume.
2. Overhead: on ``--overhead-slices`` slices that fit in memory, the same work in one process (read the stack,
   rescale each slice, OverlapTileInferer, softmax, write the float16 probability to zarr) against the job with
   1 worker using the same threads, alternating, best of 2 each.
3. Scaling: the job with 2 workers (1 torch thread each) against 1 worker (1 thread), same input.

A worker with torch, MONAI and this package imported holds about 450-530 MiB before any chunk, so limits
below about 1 GiB leave no room for work (dask pauses a worker at 80 % of its limit).

A narrow network (default features 2-4, depth 2) keeps the compute small so that the figures show the job's
own costs (reading, mirroring, scheduling, compression, writing). Everything is written under ``--work`` and
deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import threading
import time

import numpy as np
import torch

from monai_unet2015.inferers import OverlapTileInferer
from monai_unet2015.inferers.out_of_core import NetworkLoader
from monai_unet2015.inferers.zarr_job import segment_to_zarr, start_client
from monai_unet2015.networks.nets import UNet2015

ROI = 512
CHUNK = 1024


def make_stack(path: str, slices: int, size: int) -> None:
    import dask.array as da

    rng = da.random.default_rng(0)
    x = rng.integers(0, 256, (slices, size, size), chunks=(1, CHUNK, CHUNK), dtype=np.uint8)
    x.to_zarr(path, overwrite=True)


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class PeakMemory:
    """Samples the workers' resident memory until stopped; ``peaks`` is the maximum per worker (bytes)."""

    def __init__(self, client, interval: float = 0.2) -> None:
        self.client, self.interval, self.peaks, self._stop = client, interval, {}, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for worker, rss in self.client.run(_rss).items():
                    self.peaks[worker] = max(self.peaks.get(worker, 0), rss)
            except Exception:  # a worker restarting
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def job(src: str, out: str, loader: NetworkLoader, client, torch_threads: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    segment_to_zarr(src, out, loader, OverlapTileInferer(roi_size=ROI), chunk_size=CHUNK, channels=[1],
                    probability_dtype="float16", scheduler=client, torch_threads=torch_threads, progress=False)
    return time.perf_counter() - t0


def in_memory(src: str, out: str, net: torch.nn.Module, threads: int) -> float:
    """The same work in one process: read the stack, rescale each slice, OverlapTileInferer, softmax, and write
    the float16 foreground probability to a zarr array chunked like the job's output."""
    import zarr

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    stack = zarr.open_array(src, mode="r")[...]
    shutil.rmtree(out, ignore_errors=True)
    dst = zarr.create_array(out, shape=stack.shape, chunks=(1, CHUNK, CHUNK), dtype="float16")
    inferer = OverlapTileInferer(roi_size=ROI)
    with torch.no_grad():
        for z, sl in enumerate(torch.from_numpy(stack.astype(np.float32))):
            sl = (sl - sl.min()) / (sl.max() - sl.min())
            dst[z] = torch.softmax(inferer(sl[None, None], net), 1)[0, 1].to(torch.float16).numpy()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gib", type=float, nargs="*", default=[4.0, 0.5], help="volumes of the memory runs (none: skip)")
    p.add_argument("--worker-memory", default="1GiB")
    p.add_argument("--slice", type=int, default=2048)
    p.add_argument("--features", type=int, nargs="+", default=[2, 4])
    p.add_argument("--overhead-slices", type=int, default=8, help="0: skip the overhead runs")
    p.add_argument("--work", default="/tmp/unet2015_ooc")
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.manual_seed(0)
    net = UNet2015(features=tuple(args.features), dropout=0.0).eval()
    loader = NetworkLoader(net, device="cpu")
    cores = os.cpu_count() or 1
    print(f"cpu cores {cores}, torch {torch.__version__}, features {tuple(args.features)}, chunk {CHUNK}, tile {ROI}")
    try:
        print("\n# memory: 2 workers, limit", args.worker_memory)
        for gib in args.gib:
            slices = max(1, int(round(gib * 2**30 / args.slice**2)))
            src = os.path.join(args.work, f"in_{slices}.zarr")
            make_stack(src, slices, args.slice)
            client, close = start_client(None, n_workers=2, threads_per_worker=1, memory_limit=args.worker_memory)
            try:
                with PeakMemory(client) as peak:
                    seconds = job(src, os.path.join(args.work, "out.zarr"), loader, client, max(1, cores // 2))
            finally:
                close()
            vol = slices * args.slice**2
            peaks = ", ".join(f"{v / 2**20:.0f}" for v in sorted(peak.peaks.values()))
            print(f"volume {vol / 2**30:.2f} GiB uint8 ({slices} x {args.slice}^2): {seconds:.0f} s, "
                  f"{vol / 1e6 / seconds:.1f} Mpixel/s; peak worker RSS [{peaks}] MiB")
            shutil.rmtree(src, ignore_errors=True)
            shutil.rmtree(os.path.join(args.work, "out.zarr"), ignore_errors=True)

        if args.overhead_slices < 1:
            return
        src = os.path.join(args.work, "in_small.zarr")
        make_stack(src, args.overhead_slices, args.slice)
        pixels = args.overhead_slices * args.slice**2
        print(f"\n# overhead and scaling on {args.overhead_slices} x {args.slice}^2 ({pixels / 1e6:.0f} Mpixel)")
        one, close1 = start_client(None, n_workers=1, threads_per_worker=1, memory_limit="4GiB")
        two, close2 = start_client(None, n_workers=2, threads_per_worker=1, memory_limit="2GiB")
        out = os.path.join(args.work, "out_small.zarr")
        out_ref = os.path.join(args.work, "out_in_memory.zarr")
        times: dict[str, list[float]] = {}
        try:
            for _ in range(2):
                for name, run in (
                    (f"in-memory, {cores} threads", lambda: in_memory(src, out_ref, net, cores)),
                    (f"job, 1 worker x {cores} threads", lambda: job(src, out, loader, one, cores)),
                    ("in-memory, 1 thread", lambda: in_memory(src, out_ref, net, 1)),
                    ("job, 1 worker x 1 thread", lambda: job(src, out, loader, one, 1)),
                    ("job, 2 workers x 1 thread", lambda: job(src, out, loader, two, 1)),
                ):
                    times.setdefault(name, []).append(run())
        finally:
            close1()
            close2()
        best = {k: min(v) for k, v in times.items()}
        for name, t in best.items():
            print(f"{name:32s} {t:7.2f} s  {pixels / 1e6 / t:6.2f} Mpixel/s")
        ratio = best[f"job, 1 worker x {cores} threads"] / best[f"in-memory, {cores} threads"]
        print(f"job / in-memory, {cores} threads: {ratio:.3f}")
        print(f"job / in-memory, 1 thread: {best['job, 1 worker x 1 thread'] / best['in-memory, 1 thread']:.3f}")
        print(f"throughput 2 workers / 1 worker (1 thread each): "
              f"{best['job, 1 worker x 1 thread'] / best['job, 2 workers x 1 thread']:.2f}x")
    finally:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()

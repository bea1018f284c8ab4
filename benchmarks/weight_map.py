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

"""Speed and exactness of the U-Net weight map's separation term against per-instance exact references.

Run from the repository root (the data is read from ``../shared/data``)::

    .venv/bin/python benchmarks/weight_map.py            # everything (~1 min on 2 cores)
    .venv/bin/python benchmarks/weight_map.py --quick    # skips the 4x-area reference (~20 s of it)

References (both exact, both on the same carved instances):

- ``streaming``: one full-image ``scipy.ndimage.distance_transform_edt`` per instance, keeping the two smallest
  distances per pixel as it goes (the straightforward method, written frugally; the ratio we quote).
- ``stacked``: the literal version: stack every instance's distance map, ``np.partition`` for the two smallest.

Times are the minimum wall-clock time over ``--repeats`` runs (references: over ``--ref-repeats`` runs).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monai_unet2015.transforms.weight_map import (  # noqa: E402
    UNetWeightMap,
    carve_borders,
    label_instances,
    separation_border_term,
)

DATA = ROOT.parent / "shared" / "data"
W0, SIGMA, TOL = 10.0, 5.0, 1e-4


def _term(d1: np.ndarray, d2: np.ndarray, instances: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        term = W0 * np.exp(-((d1 + d2) ** 2) / (2 * SIGMA**2))
    term[~np.isfinite(d2) | (instances > 0)] = 0.0
    return term


def reference_streaming(instances: np.ndarray, spacing=None) -> np.ndarray:
    d1 = np.full(instances.shape, np.inf)
    d2 = np.full(instances.shape, np.inf)
    for i in range(1, int(instances.max()) + 1):
        d = ndi.distance_transform_edt(instances != i, sampling=spacing)
        d2 = np.minimum(d2, np.maximum(d1, d))
        d1 = np.minimum(d1, d)
    return _term(d1, d2, instances)


def reference_stacked(instances: np.ndarray, spacing=None) -> np.ndarray:
    stack = np.stack(
        [ndi.distance_transform_edt(instances != i, sampling=spacing) for i in range(1, int(instances.max()) + 1)]
    )
    stack = np.partition(stack, 1, axis=0)
    return _term(stack[0], stack[1], instances)


def best_time(fn, repeats: int):
    best, result = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def carved_instances(labels: np.ndarray) -> np.ndarray:
    instances, _ = label_instances(labels)
    return carve_borders(instances)[0]


def tile(labels: np.ndarray, k: int) -> np.ndarray:
    """k x k copies of an instance map with distinct ids (k**2 times the area and the instances)."""
    labels = labels.astype(np.int64)
    n = int(labels.max())
    rows = []
    for a in range(k):
        rows.append(np.concatenate([np.where(labels > 0, labels + (a * k + b) * n, 0) for b in range(k)], axis=1))
    return np.concatenate(rows, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--ref-repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="skip the reference on the 4x-area image")
    args = parser.parse_args()
    try:
        import tifffile
    except ImportError:
        sys.exit("tifffile is needed to read the benchmark data")
    if not DATA.is_dir():
        sys.exit(f"data not found at {DATA}")

    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.processor() or platform.machine()}")
    print(f"w0={W0}, sigma={SIGMA} px, tol={TOL}; times: best of {args.repeats} (references: {args.ref_repeats})\n")

    cases = [
        ("DSB 2018 nuclei mask2d", tifffile.imread(DATA / "dsb2018-nuclei" / "mask2d.tif"), None),
        ("DIC-HeLa 01_GT man_seg002", tifffile.imread(DATA / "dic-hela" / "01_GT" / "SEG" / "man_seg002.tif"), None),
        ("synthetic 3D mask3d", tifffile.imread(DATA / "synthetic-3d" / "mask3d.tif"), None),
    ]
    header = f"{'mask':28s} {'shape':>14s} {'inst':>5s} {'fast ms':>9s} {'stream ms':>10s} {'x':>6s} {'max err':>9s}"
    print(header)
    print("-" * len(header))
    for name, labels, spacing in cases:
        inst = carved_instances(labels)
        t_fast, fast = best_time(lambda: separation_border_term(inst, W0, SIGMA, spacing, TOL), args.repeats)
        t_ref, ref = best_time(lambda: reference_streaming(inst, spacing), args.ref_repeats)
        err = float(np.abs(fast - ref).max())
        n = len(np.unique(inst)) - 1
        print(
            f"{name:28s} {str(labels.shape):>14s} {n:5d} {t_fast * 1e3:9.1f} {t_ref * 1e3:10.0f} "
            f"{t_ref / t_fast:6.1f} {err:9.2e}"
        )

    dsb = tifffile.imread(DATA / "dsb2018-nuclei" / "mask2d.tif")
    inst = carved_instances(dsb)
    t_fast, fast = best_time(lambda: separation_border_term(inst, W0, SIGMA, None, TOL), args.repeats)
    t_stack, stacked = best_time(lambda: reference_stacked(inst), 1)
    print(
        f"\nDSB, literal stacked reference (np.partition): {t_stack * 1e3:.0f} ms -> {t_stack / t_fast:.1f}x, "
        f"max err {float(np.abs(fast - stacked).max()):.2e}"
    )
    t_exact, exact = best_time(lambda: separation_border_term(inst, W0, SIGMA, None, 1e-9), args.repeats)
    print(
        f"DSB, tol=1e-9: {t_exact * 1e3:.1f} ms, max err {float(np.abs(exact - stacked).max()):.2e} "
        f"(tol=1e-4: {t_fast * 1e3:.1f} ms)"
    )
    t_full, _ = best_time(lambda: UNetWeightMap()(dsb[None]), args.repeats)
    print(f"DSB, whole UNetWeightMap (labels, carving, wc, term): {t_full * 1e3:.1f} ms")

    print("\nScaling with the image area (DSB mask tiled k x k: k**2 x pixels and instances)")
    print(f"{'k':>2s} {'shape':>14s} {'inst':>5s} {'fast ms':>9s} {'vs k=1':>7s} {'stream ms':>10s} {'vs k=1':>7s}")
    base_fast = base_ref = None
    for k in (1, 2):
        inst_k = carved_instances(tile(dsb, k))
        t_fast, _ = best_time(lambda: separation_border_term(inst_k, W0, SIGMA, None, TOL), args.repeats)
        if args.quick and k > 1:
            t_ref = float("nan")
        else:
            t_ref, _ = best_time(lambda: reference_streaming(inst_k), 1)
        base_fast = base_fast or t_fast
        base_ref = base_ref or t_ref
        print(
            f"{k:2d} {str(inst_k.shape):>14s} {int(inst_k.max()):5d} {t_fast * 1e3:9.1f} {t_fast / base_fast:7.2f} "
            f"{t_ref * 1e3:10.0f} {t_ref / base_ref:7.2f}"
        )


if __name__ == "__main__":
    main()

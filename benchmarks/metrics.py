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

"""Time of the ISBI 2012 and Cell Tracking Challenge metrics on real 512x512 data, against references
measured in the same run: a sequential (pixel by pixel, Fiji-order) simple-point warping, the
scikit-image Rand-error pipeline and a per-object SEG loop.

    python benchmarks/metrics.py [--slices 2] [--repeats 3]

The probability maps are ISBI 2012 training labels blurred with noise (no trained network needed):
"noisy" (noise 0.6, blur 1.5 px) and "clean" (noise 0.3), both in [0, 1], 1 = membrane.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from monai_unet2015.metrics import DEFAULT_THRESHOLDS, pixel_error, rand_error, seg_measure, warping_error
from monai_unet2015.metrics.simple_point import simple_point_lut, warp_binary

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _best_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def _membrane(index: int) -> np.ndarray:
    from PIL import Image

    return (np.array(Image.open(DATA / "isbi2012" / "train" / "label" / f"{index:02d}.png")) == 0).astype(np.float64)


def _probability(membrane: np.ndarray, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = ndi.gaussian_filter(membrane + noise * rng.standard_normal(membrane.shape), 1.5)
    return (p - p.min()) / (p.max() - p.min())


def sequential_warp(source: np.ndarray, target: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """Reference: Fiji's loop (WarpingError.simplePointWarp2d) pixel by pixel in Python.

    Each pass visits the disagreeing pixels in descending priority and flips each one that is simple at
    that moment; passes repeat until one flips nothing.
    """
    lut = simple_point_lut(1).tolist()
    h, w = source.shape
    wd = w + 2
    cur = bytearray(np.pad(source, 1).astype(np.uint8).tobytes())
    tgt = np.pad(target, 1).astype(np.uint8).ravel()
    pri = np.pad(priority, 1).ravel()
    offs = [-wd - 1, -wd, -wd + 1, -1, 1, wd - 1, wd, wd + 1]
    while True:
        mism = np.flatnonzero(np.frombuffer(bytes(cur), dtype=np.uint8) != tgt)
        flipped = 0
        for i in mism[np.argsort(-pri[mism], kind="stable")].tolist():
            code = 0
            for k, o in enumerate(offs):
                code |= cur[i + o] << k
            if lut[code]:
                cur[i] ^= 1
                flipped += 1
        if flipped == 0:
            break
    return np.frombuffer(bytes(cur), dtype=np.uint8).reshape(h + 2, wd)[1:-1, 1:-1].astype(bool)


def _slow_seg(pred: np.ndarray, ref: np.ndarray) -> float:
    scores = []
    for r in np.unique(ref[ref > 0]):
        rmask = ref == r
        best = 0.0
        for s in np.unique(pred[rmask]):
            if s == 0:
                continue
            smask = pred == s
            inter = np.count_nonzero(rmask & smask)
            if inter > 0.5 * np.count_nonzero(rmask):
                best = inter / np.count_nonzero(rmask | smask)
        scores.append(best)
    return float(np.mean(scores))


def _warp_sweep(warp, cells: np.ndarray, prob: np.ndarray) -> int:
    """Warp the ground-truth cells into the prediction at every default threshold; pixels left over."""
    left = 0
    for t in DEFAULT_THRESHOLDS:
        pred = prob <= t
        left += int(np.count_nonzero(warp(cells, pred, np.abs(prob - t)) != pred))
    return left


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slices", type=int, default=2, help="ISBI training slices to average over")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if not (DATA / "isbi2012").is_dir():
        raise SystemExit(f"data not found at {DATA}")
    ours_warp = lambda s, t, pri: warp_binary(s, t, priority=pri)  # noqa: E731
    n_thr = len(DEFAULT_THRESHOLDS)
    rows = []
    for scenario, noise in (("noisy", 0.6), ("clean", 0.3)):
        acc = dict.fromkeys(("one", "one_ref", "sweep", "sweep_ref", "metric", "rand", "rand_ref", "pix"), 0.0)
        left = dict.fromkeys(("one", "one_ref", "sweep", "sweep_ref"), 0)
        for s in range(args.slices):
            m = _membrane(s)
            prob = _probability(m, noise, seed=s)
            cells, pred, pri = m == 0, prob <= 0.5, np.abs(prob - 0.5)
            dt, out = _best_time(lambda: ours_warp(cells, pred, pri), args.repeats)
            acc["one"] += dt
            left["one"] += int(np.count_nonzero(out != pred))
            dt, out = _best_time(lambda: sequential_warp(cells, pred, pri), 1)
            acc["one_ref"] += dt
            left["one_ref"] += int(np.count_nonzero(out != pred))
            dt, left_sweep = _best_time(lambda: _warp_sweep(ours_warp, cells, prob), args.repeats)
            acc["sweep"] += dt
            left["sweep"] += left_sweep
            dt, left_sweep = _best_time(lambda: _warp_sweep(sequential_warp, cells, prob), 1)
            acc["sweep_ref"] += dt
            left["sweep_ref"] += left_sweep
            acc["metric"] += _best_time(lambda: warping_error(prob, m), args.repeats)[0]
            acc["pix"] += _best_time(lambda: pixel_error(prob, m), args.repeats)[0]
            f = lambda: rand_error(prob, m, thresholds=0.5, normalization="pairs").error  # noqa: E731
            dt, ours_rand = _best_time(f, args.repeats)
            acc["rand"] += dt
            dt, sk_rand = _best_time(lambda: _skimage_rand(prob, m), args.repeats)
            acc["rand_ref"] += dt
            assert abs(ours_rand - sk_rand) < 1e-12, (ours_rand, sk_rand)
        n = args.slices
        a = {k: v / n for k, v in acc.items()}
        rows.append((f"warp, threshold 0.5 ({scenario})", a["one"], a["one_ref"],
                     f"{left['one'] / n:.0f} vs {left['one_ref'] / n:.0f} px left"))
        rows.append((f"warp, {n_thr} thresholds ({scenario})", a["sweep"], a["sweep_ref"],
                     f"{left['sweep'] / n:.0f} vs {left['sweep_ref'] / n:.0f} px left"))
        rows.append((f"warping_error, {n_thr} thr. + splits/mergers ({scenario})", a["metric"], None, ""))
        rows.append((f"rand_error, threshold 0.5 ({scenario})", a["rand"], a["rand_ref"], "equal values"))
        rows.append((f"pixel_error, {n_thr} thresholds ({scenario})", a["pix"], None, ""))

    hela = DATA / "dic-hela"
    if (hela / "01_GT" / "SEG").is_dir():
        import tifffile

        f = sorted((hela / "01_GT" / "SEG").glob("man_seg*.tif"))[0]
        ref, pred = tifffile.imread(f), tifffile.imread(hela / "01_ST" / "SEG" / f.name)
        dt, ours = _best_time(lambda: seg_measure(pred, ref).seg, args.repeats)
        dt_slow, slow = _best_time(lambda: _slow_seg(pred, ref), 1)
        n_obj = len(np.unique(ref)) - 1
        rows.append((f"seg_measure, DIC-HeLa ST vs GT ({n_obj} cells)", dt, dt_slow, f"SEG {ours:.4f} = {slow:.4f}"))
    dsb = DATA / "dsb2018-nuclei" / "mask2d.tif"
    if dsb.is_file():
        import tifffile

        ref = tifffile.imread(dsb).astype(np.int64)
        pred = np.where(ndi.grey_erosion(ref, size=(3, 3)) == ref, ref, 0) * 7  # eroded, renumbered
        dt, ours = _best_time(lambda: seg_measure(pred, ref).seg, args.repeats)
        dt_slow, slow = _best_time(lambda: _slow_seg(pred, ref), 1)
        n_obj = len(np.unique(ref)) - 1
        rows.append((f"seg_measure, DSB 2018 eroded ({n_obj} nuclei)", dt, dt_slow, f"SEG {ours:.4f} = {slow:.4f}"))

    print(f"{'metric (512x512, per slice)':<52} {'ours':>9} {'reference':>10} {'speed-up':>9}  note")
    for name, ours, ref, note in rows:
        ref_s = f"{ref * 1e3:8.1f}ms" if ref is not None else f"{'-':>10}"
        sp = f"{ref / ours:8.1f}x" if ref is not None else f"{'-':>9}"
        print(f"{name:<52} {ours * 1e3:7.1f}ms {ref_s} {sp}  {note}")
    print("references: warp = Fiji's sequential loop (WarpingError.simplePointWarp2d) in Python, same lookup table;")
    print("            rand = scikit-image label + adapted_rand_error; seg = loop over reference objects.")
    print(f"times: best of {args.repeats} (references: 1 run), averaged over {args.slices} ISBI training slices.")


def _skimage_rand(prob: np.ndarray, membrane: np.ndarray) -> float:
    from skimage.measure import label
    from skimage.metrics import adapted_rand_error

    gt = label(membrane == 0, connectivity=1)
    pred = label(prob <= 0.5, connectivity=1)
    zeros = pred == 0
    pred[zeros] = pred.max() + 1 + np.arange(np.count_nonzero(zeros))  # membrane pixels: singletons
    return adapted_rand_error(gt, pred)[0]


if __name__ == "__main__":
    main()

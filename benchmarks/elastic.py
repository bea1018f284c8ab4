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

"""Time of the paper's elastic deformation (image + label) against a SciPy implementation of the same
algorithm and MONAI's Rand2DElasticd / Rand3DElasticd, measured in the same run.

    python benchmarks/elastic.py [--size 572] [--size3d 128] [--repeats 10] [--repeats3d 2] [--device cpu] [--threads 0]

One call = draw a 3x3 (3x3x3) grid of N(0, 10 px) displacements, interpolate it to every pixel, resample the
image (cubic, or linear where stated) and the label (nearest) with one shared field.

- SciPy reference (the same algorithm): ``scipy.ndimage.zoom(order=3)`` of each component of the coarse grid to
  the image size (cubic B-spline, exactly our field), then ``map_coordinates`` with order 3 for the image (cubic
  B-spline, exactly our ``mode=3``) and order 0 for the label, ``mode="mirror"`` (our ``"reflection"``).
- MONAI ``Rand2DElasticd(spacing=286, magnitude_range=(10, 10))``: the closest MONAI setting (control points
  every 286 px, i.e. about 3 per 572 px axis plus MONAI's outer points; normal offsets scaled by 10 px), same
  modes and reflection padding. ``Rand3DElasticd`` is a different scheme (Gaussian-smoothed dense noise), shown
  for scale only.
- Ours, ``"bicubic"`` is ``grid_sample``'s cubic convolution (Keys, a = -0.75, 2D only); ``3`` is the cubic
  B-spline of the SciPy reference. Both are "cubic"; only ``3`` is the identical kernel.

Resampling engine (one fixed field, the resampling calls only): our ``threaded_grid_sample`` /
``bspline_resample`` (``monai_unet2015.transforms.resample``) against MONAI's ``Resample`` with the same grid
(``norm_coords=False, align_corners=True, dtype=None``; its channel-first grid is built once, outside the timing,
which favours it), image (cubic or linear) + label (nearest, as float32) as ``RandGridElasticd`` resamples them.
``Resample(mode=3)`` runs ``scipy.ndimage.map_coordinates`` on CPU.

All variants of a table are timed round-robin (one call of each in turn, ``--repeats`` rounds, median per
variant), so a change in the machine's load affects them alike; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.ndimage as ndi
import torch

from monai.transforms import Rand2DElasticd, Rand3DElasticd, Resample
from monai_unet2015.transforms import RandGridElasticd
from monai_unet2015.transforms.elastic.functional import dense_displacement
from monai_unet2015.transforms.resample import bspline_resample, coarse_sampling_grid, threaded_grid_sample


def _timed(fns: dict, repeats: int, sync) -> dict:
    """Median time of each function, timed round-robin (one call of each per round) after one warm-up call each."""
    times: dict = {name: [] for name in fns}
    for fn in fns.values():  # warm-up
        fn()
        sync()
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def engine_rows(image: torch.Tensor, label: torch.Tensor, repeats: int, sync, rng) -> list:
    """Resampling calls only, one fixed field: ours against MONAI's ``Resample`` on the same grid."""
    nd = image.ndim - 1
    spatial = tuple(image.shape[1:])
    coarse = torch.from_numpy(rng.normal(0.0, 10.0, (nd,) + (3,) * nd)).float().to(image.device)
    grid = coarse_sampling_grid(coarse, spatial)  # (1, *spatial, nd), grid_sample layout
    dense = dense_displacement(coarse, spatial)
    monai_grid = grid[0].movedim(-1, 0).flip(0).contiguous()  # (nd, *spatial), array-axis order
    lab = label.float()

    def resample(mode):
        return Resample(mode=mode, padding_mode="reflection", norm_coords=False, align_corners=True, dtype=None)

    fns, names = {}, {}
    cubic = "bicubic" if nd == 2 else "bilinear"
    r_img, r_lab, r_spline = resample(cubic), resample("nearest"), resample(3)
    fns["ours"] = lambda: (
        threaded_grid_sample(image[None], grid, cubic, "reflection"),
        threaded_grid_sample(lab[None], grid, "nearest", "reflection"),
    )
    names["ours"] = f"ours threaded_grid_sample, image {cubic!r} + label nearest"
    fns["monai"] = lambda: (r_img(image, monai_grid), r_lab(lab, monai_grid))
    names["monai"] = f"MONAI Resample, image {cubic!r} + label nearest"
    if nd == 2:
        fns["ours3"] = lambda: (
            bspline_resample(image, dense, "reflection"),
            threaded_grid_sample(lab[None], grid, "nearest", "reflection"),
        )
        names["ours3"] = "ours bspline_resample, image 3 + label nearest"
        fns["monai3"] = lambda: (r_spline(image, monai_grid), r_lab(lab, monai_grid))
        names["monai3"] = "MONAI Resample, image 3 (SciPy map_coordinates) + label nearest"
    t = _timed(fns, repeats, sync)
    return [(names[k], t[k], t["ours" if k in ("ours", "monai") else "ours3"]) for k in fns]


def scipy_reference(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, sigma: float = 10.0):
    """The paper's algorithm with SciPy: zoom(order=3) of the 3x3 grid, map_coordinates order 3 / order 0."""
    spatial = image.shape
    nd = len(spatial)
    coarse = rng.normal(0.0, sigma, (nd,) + (3,) * nd)
    dense = [ndi.zoom(coarse[a], np.divide(spatial, 3), order=3) for a in range(nd)]
    coords = np.stack(np.meshgrid(*[np.arange(n) for n in spatial], indexing="ij")) + np.stack(dense)
    img = ndi.map_coordinates(image, coords, order=3, mode="mirror")
    lab = ndi.map_coordinates(label, coords, order=0, mode="mirror")
    return img, lab


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=572)
    p.add_argument("--size3d", type=int, default=128, help="0 skips 3D")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--repeats3d", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}; SciPy is single-threaded")

    rng = np.random.default_rng(0)
    results = []
    for nd, size, repeats in ((2, args.size, args.repeats), (3, args.size3d, args.repeats3d)):
        if size <= 0:
            continue
        shape = (size,) * nd
        image_np = rng.random(shape, dtype=np.float32)
        label_np = (rng.random(shape) * 8).astype(np.float32)
        data = {
            "image": torch.from_numpy(image_np)[None].to(dev),
            "label": torch.from_numpy(label_np).long()[None].to(dev),
        }
        modes = [(3, "cubic B-spline (= SciPy)")] + ([("bicubic", "cubic convolution")] if nd == 2 else [])
        modes.append(("bilinear", "linear"))
        monai_modes = ("bicubic", "nearest") if nd == 2 else ("bilinear", "nearest")
        if nd == 2:
            m = Rand2DElasticd(
                ["image", "label"], spacing=(286, 286), magnitude_range=(10, 10), prob=1.0,
                mode=monai_modes, padding_mode="reflection", device=dev,
            )
            label_monai = "MONAI Rand2DElasticd (bicubic + nearest)"
        else:
            m = Rand3DElasticd(
                ["image", "label"], sigma_range=(8, 8), magnitude_range=(10, 10), prob=1.0,
                mode=monai_modes, padding_mode="reflection", device=dev,
            )
            label_monai = "MONAI Rand3DElasticd (bilinear + nearest; different scheme)"
        m.set_random_state(0)
        fns = {"ref": lambda: scipy_reference(image_np, label_np, rng)}
        for mode, _ in modes:
            t = RandGridElasticd(["image", "label"], prob=1.0, mode=(mode, "nearest")).set_random_state(0)
            fns[mode] = lambda t=t: t(data)
        fns["monai"] = lambda: m(data)
        times = _timed(fns, repeats, sync)
        t_ref, t_monai = times["ref"], times["monai"]
        ours = {mode: times[mode] for mode, _ in modes}
        rows = [("SciPy reference (zoom o3 + map_coordinates o3 / o0)", t_ref)]
        for mode, name in modes:
            rows.append((f"ours RandGridElasticd, image {mode!r} ({name}) + label nearest", ours[mode]))
        rows.append((label_monai, t_monai))

        print(f"\n{nd}D {'x'.join(map(str, shape))}, median of {repeats} calls")
        for name, sec in rows:
            print(f"  {name:<72s} {sec * 1e3:10.1f} ms   SciPy/this {t_ref / sec:6.1f}x   "
                  f"MONAI/this {t_monai / sec:6.1f}x")
        results.append((nd, t_ref, t_monai, ours))

        engine = engine_rows(data["image"].float(), data["label"], repeats, sync, rng)
        print(f"  resampling engine only (one fixed field), median of {repeats} calls:")
        for name, sec, sec_ours in engine:
            print(f"    {name:<70s} {sec * 1e3:10.1f} ms   this/ours {sec / sec_ours:6.2f}x")

    for nd, t_ref, t_monai, ours in results:
        if nd != 2:
            continue
        best_cubic = min(ours["bicubic"], ours[3])
        print("\nRequirement (2D, cubic image + nearest label):")
        for mode in ("bicubic", 3):
            print(
                f"  mode {mode!r}: {t_ref / ours[mode]:.1f}x faster than SciPy (need >= 10: "
                f"{'PASS' if t_ref / ours[mode] >= 10 else 'FAIL'}), {t_monai / ours[mode]:.1f}x faster than MONAI "
                f"(need >= 5: {'PASS' if t_monai / ours[mode] >= 5 else 'FAIL'})"
            )
        print(f"  fastest cubic: {best_cubic * 1e3:.1f} ms")


if __name__ == "__main__":
    main()

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
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.ndimage as ndi
import torch

from monai.transforms import Rand2DElasticd, Rand3DElasticd
from monai_unet2015.transforms import RandGridElasticd


def _timed(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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
        rows = []
        t_ref = _timed(lambda: scipy_reference(image_np, label_np, rng), repeats, lambda: None)
        rows.append(("SciPy reference (zoom o3 + map_coordinates o3 / o0)", t_ref))
        modes = [(3, "cubic B-spline (= SciPy)")] + ([("bicubic", "cubic convolution")] if nd == 2 else [])
        modes.append(("bilinear", "linear"))
        ours = {}
        for mode, name in modes:
            t = RandGridElasticd(["image", "label"], prob=1.0, mode=(mode, "nearest")).set_random_state(0)
            ours[mode] = _timed(lambda: t(data), repeats, sync)
            rows.append((f"ours RandGridElasticd, image {mode!r} ({name}) + label nearest", ours[mode]))
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
        t_monai = _timed(lambda: m(data), repeats, sync)
        rows.append((label_monai, t_monai))

        print(f"\n{nd}D {'x'.join(map(str, shape))}, median of {repeats} calls")
        for name, sec in rows:
            print(f"  {name:<72s} {sec * 1e3:10.1f} ms   SciPy/this {t_ref / sec:6.1f}x   "
                  f"MONAI/this {t_monai / sec:6.1f}x")
        results.append((nd, t_ref, t_monai, ours))

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

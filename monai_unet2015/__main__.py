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

"""Command line: ``python -m monai_unet2015 segment`` segments 2D images with the valid-padding U-Net."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = ["main", "segment"]

SAMPLE = Path(__file__).resolve().parent / "data" / "samples" / "isbi2012_test_00.png"


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        img = tifffile.imread(path)
    else:
        img = np.asarray(Image.open(path))
    if img.ndim == 3:  # colour: use the mean of the channels
        img = img[..., :3].mean(-1)
    if img.ndim != 2:
        raise ValueError(f"--input {path}: expected a 2D grey image, got an array of shape {img.shape}.")
    return img.astype(np.float32)


def _load_network(weights: Path | None, features: Sequence[int]) -> torch.nn.Module:
    from monai_unet2015.networks.nets import UNet2015

    net = UNet2015(spatial_dims=2, in_channels=1, out_channels=2, features=tuple(features))
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = state.get("model", state) if isinstance(state, dict) else state
        net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.eval()


def segment(
    inputs: Sequence[str | Path],
    output_dir: str | Path,
    weights: str | Path | None = None,
    features: Sequence[int] = (64, 128, 256, 512, 1024),
    device: str = "cpu",
    roi_size: int = 388,
    tta: bool = False,
) -> list[Path]:
    """Segment each 2D image in ``inputs``; write ``<stem>_prob.tif``, ``<stem>_mask.png`` and ``<stem>_overlay.png``.

    The image is normalised to zero mean and unit variance and segmented with
    :py:class:`~monai_unet2015.inferers.OverlapTileInferer` (mirror padding, output tiles of ``roi_size``),
    optionally averaged over the 8 flips/rotations (``tta``). ``_prob.tif`` holds the softmax probability of
    class 1 (float32), ``_mask.png`` its threshold at 0.5, ``_overlay.png`` class-0 pixels tinted red.

    Returns:
        the written file paths.
    """
    import tifffile
    from PIL import Image

    from monai_unet2015.inferers import DihedralTTAInferer, OverlapTileInferer

    net = _load_network(Path(weights) if weights else None, features).to(device)
    inferer = OverlapTileInferer(roi_size=roi_size, progress=False)
    if tta:
        inferer = DihedralTTAInferer(inferer)
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in map(Path, inputs):
        img = _read_image(path)
        x = (img - img.mean()) / max(float(img.std()), 1e-6)
        t0 = time.perf_counter()
        logits = inferer(torch.from_numpy(x)[None, None].to(device), net)
        prob = torch.softmax(logits.float(), 1)[0, 1].cpu().numpy()
        dt = time.perf_counter() - t0
        mask = (prob > 0.5).astype(np.uint8) * 255
        grey = np.clip((img - img.min()) / max(float(np.ptp(img)), 1e-6) * 255, 0, 255).astype(np.uint8)
        overlay = np.stack([grey] * 3, -1).astype(np.float32)
        overlay[mask == 0] = 0.55 * overlay[mask == 0] + 0.45 * np.array([255, 40, 40])
        stem = path.stem
        files = [out_dir / f"{stem}_prob.tif", out_dir / f"{stem}_mask.png", out_dir / f"{stem}_overlay.png"]
        tifffile.imwrite(files[0], prob.astype(np.float32))
        Image.fromarray(mask).save(files[1])
        Image.fromarray(overlay.astype(np.uint8)).save(files[2])
        h, w = img.shape
        print(f"{path.name}: {h}x{w} segmented in {dt:.2f} s -> " + ", ".join(str(f) for f in files))
        written += files
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monai_unet2015", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    seg = sub.add_parser("segment", help="segment 2D images (default: the shipped ISBI 2012 test slice)")
    seg.add_argument("--input", nargs="*", default=[str(SAMPLE)], help="image files (PNG or TIFF)")
    seg.add_argument("--output", default="outputs/sample", help="output folder")
    seg.add_argument("--weights", default=None, help="state dict of a trained UNet2015 (.pt)")
    seg.add_argument("--features", default="64,128,256,512,1024", help="channels per level, comma separated")
    seg.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    seg.add_argument("--roi-size", type=int, default=388, help="output tile size (rounded up to a valid one)")
    seg.add_argument("--tta", action="store_true", help="average over the 8 flips/rotations")
    args = parser.parse_args(argv)
    if args.weights is None:
        print("note: no --weights given: the network keeps the paper's random initialisation, so the mask is not meaningful.")
    features = [int(f) for f in args.features.split(",")]
    segment(args.input, args.output, args.weights, features, args.device, args.roi_size, args.tta)
    return 0


if __name__ == "__main__":
    sys.exit(main())

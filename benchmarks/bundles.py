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

"""Inference time of the bundles' shipped networks on their own 512x512 samples, with the paper's full-width
network on the same image and tiles as the reference of the same run.

    python benchmarks/bundles.py [--threads N] [--repeats 3] [--no-reference]

For each bundle: the network built from its ``configs/inference.json`` with ``models/model.pt`` loaded, the
sample scaled as the bundle does, and ``OverlapTileInferer`` with the bundle's 388x388 output tiles, with one
tile covering the image (``roi_size`` 512) and with the 8 flips/rotations averaged (``DihedralTTAInferer``).
Network and tiling only: loading, writing and the start of ``monai.bundle`` are not included. Median of
``--repeats`` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser

from monai_unet2015.inferers import DihedralTTAInferer, OverlapTileInferer
from monai_unet2015.networks.nets import UNet2015

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"
NAMES = ("unet2015_em_membranes", "unet2015_dic_hela")


def load_bundle(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """The shipped network (float32, eval mode) and the bundle's sample as a ``(1, 1, H, W)`` tensor."""
    root = BUNDLES / name
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser["bundle_root"] = str(root)
    net = parser.get_parsed_content("network_def")
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    net.load_state_dict({k: v.float() for k, v in state.items()})
    data = parser.get_parsed_content("preprocessing")({"image": str(next((root / "sample").iterdir()))})
    return net.eval(), torch.as_tensor(data["image"]).float()[None]


def median_time(inferer, net, x: torch.Tensor, repeats: int) -> float:
    with torch.no_grad():
        inferer(x, net)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            inferer(x, net)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-reference", action="store_true", help="skip the full-width reference")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU")
    settings = {
        "388 tiles (default)": OverlapTileInferer(roi_size=388),
        "roi_size 512 (one tile)": OverlapTileInferer(roi_size=512),
        "388 tiles + 8 flips/rotations": DihedralTTAInferer(OverlapTileInferer(roi_size=388)),
    }
    x = None
    for name in NAMES:
        net, x = load_bundle(name)
        params = sum(p.numel() for p in net.parameters())
        for label, inferer in settings.items():
            t = median_time(inferer, net, x, args.repeats)
            print(f"{name:24s} {params / 1e6:5.2f} M  {tuple(x.shape[2:])}  {label:30s} {t:6.2f} s")
    if not args.no_reference and x is not None:
        torch.manual_seed(0)
        full = UNet2015(features=(64, 128, 256, 512, 1024)).eval()
        t = median_time(settings["388 tiles (default)"], full, x, max(1, args.repeats - 2))
        params = sum(p.numel() for p in full.parameters())
        print(f"{'reference: paper width':24s} {params / 1e6:5.2f} M  {tuple(x.shape[2:])}  {'388 tiles':30s} {t:6.2f} s")


if __name__ == "__main__":
    main()

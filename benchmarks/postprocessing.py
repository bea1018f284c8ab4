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

"""Post-processing time of the bundles (instances, overlay) against their network inference, same frame, same run.

    python benchmarks/postprocessing.py [--threads N] [--repeats 5]

For each bundle: its shipped network and its 512x512 sample, the inference of ``inference.json`` (overlap-tile,
388x388 output tiles, no test-time augmentation) and then every step of its ``postprocessing`` except the
writers (``Save*``): softmax, channel selection, mask, the watershed instances (cells) or neurons (EM), the
overlay. Each step is timed on its own; the figure that counts is the sum of the steps over the inference time
(the target: at most 10 %). Median of ``--repeats`` after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from monai.bundle import ConfigParser

from monai_unet2015.inferers import OverlapTileInferer

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"
NAMES = ("unet2015_em_membranes", "unet2015_dic_hela")


def bundle_parts(name: str):
    """Network (float32, eval), the preprocessed sample ``(1, 1, H, W)`` and the post-processing steps (no writers)."""
    root = BUNDLES / name
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser["bundle_root"] = str(root)
    parser["output_dir"] = "/nonexistent"  # the writers are left out, nothing is written
    net = parser.get_parsed_content("network_def")
    state = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    net.load_state_dict({k: v.float() for k, v in state.items()})
    data = parser.get_parsed_content("preprocessing")({"image": str(next((root / "sample").iterdir()))})
    steps = [t for t in parser.get_parsed_content("postprocessing").transforms if not type(t).__name__.startswith("Save")]
    return net.eval(), data["image"], steps


def median(fn, repeats: int) -> tuple[float, object]:
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU")
    inferer = OverlapTileInferer(roi_size=388)
    for name in NAMES:
        net, image, steps = bundle_parts(name)
        with torch.no_grad():
            t_inf, logits = median(lambda: inferer(image[None], net), args.repeats)
        print(f"\n{name}: {tuple(image.shape[1:])} frame, inference (388 tiles) {t_inf * 1e3:8.1f} ms")
        d = {"image": image, "pred": logits[0]}
        total = 0.0
        for step in steps:
            t, d = median(lambda step=step, d=d: step(dict(d)), args.repeats)
            total += t
            print(f"  {type(step).__name__:28s} {t * 1e3:8.1f} ms  {100 * t / t_inf:5.1f} %")
        print(f"  {'post-processing in all':28s} {total * 1e3:8.1f} ms  {100 * total / t_inf:5.1f} % of the inference")


if __name__ == "__main__":
    main()

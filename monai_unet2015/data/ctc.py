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

"""Data lists for the Cell Tracking Challenge layout (``NN/tTTT.tif`` + ``NN_GT/SEG/man_segTTT.tif``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from monai.utils import look_up_option

__all__ = ["ctc_datalist"]


def ctc_datalist(
    dataset_dir: str | Path,
    sequence: str = "01",
    truth: str = "GT",
    frames: Sequence[int] | None = None,
    labelled: bool = True,
) -> list[dict]:
    """Items ``{"image": path, "label": path, "frame": t}`` for one Cell Tracking Challenge sequence.

    The layout is the challenge's: images ``dataset_dir/{sequence}/tTTT.tif`` and instance segmentations
    ``dataset_dir/{sequence}_{truth}/SEG/man_segTTT.tif`` (``truth`` is ``"GT"`` for the manual gold truth,
    ``"ST"`` for the silver truth). With ``labelled=True`` only frames that have a segmentation are listed.

    Args:
        dataset_dir: folder holding the sequence folders.
        sequence: sequence name, ``"01"`` or ``"02"``.
        truth: ``"GT"`` or ``"ST"``.
        frames: frame numbers to keep (default: all available).
        labelled: whether to pair each frame with its segmentation.

    Examples::

        >>> items = ctc_datalist("../shared/data/dic-hela", "01")  # doctest: +SKIP
        >>> [it["frame"] for it in items][:3]  # doctest: +SKIP
        [2, 5, 21]
    """
    root = Path(dataset_dir)
    try:
        truth = look_up_option(truth, ("GT", "ST"))
    except ValueError:
        raise ValueError(f"truth must be 'GT' or 'ST', got {truth!r}.") from None
    image_dir = root / sequence
    if not image_dir.is_dir():
        raise ValueError(f"dataset_dir {str(root)!r} has no sequence folder {sequence!r}.")
    images = {}
    for f in image_dir.iterdir():
        m = re.fullmatch(r"t(\d+)\.tiff?", f.name)
        if m:
            images[int(m.group(1))] = f
    if not images:
        raise ValueError(f"{str(image_dir)!r} holds no tTTT.tif frames.")
    items = []
    if labelled:
        seg_dir = root / f"{sequence}_{truth}" / "SEG"
        if not seg_dir.is_dir():
            raise ValueError(f"no segmentation folder {str(seg_dir)!r}.")
        for f in sorted(seg_dir.iterdir()):
            m = re.fullmatch(r"man_seg(\d+)\.tiff?", f.name)
            if m and int(m.group(1)) in images:
                t = int(m.group(1))
                items.append({"image": str(images[t]), "label": str(f), "frame": t})
    else:
        items = [{"image": str(images[t]), "frame": t} for t in sorted(images)]
    if frames is not None:
        wanted = {int(t) for t in frames}
        unknown = sorted(wanted - {it["frame"] for it in items})
        if unknown:
            raise ValueError(f"frames {unknown} not available; available: {[it['frame'] for it in items]}.")
        items = [it for it in items if it["frame"] in wanted]
    return items

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

"""Data lists for the ISBI 2012 EM segmentation challenge layouts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["isbi2012_datalist"]

_IMAGE_EXT = (".png", ".tif", ".tiff")


def _numbered(folder: Path) -> dict[int, Path]:
    files = {}
    for f in sorted(folder.iterdir()):
        m = re.fullmatch(r"(\d+)", f.stem)
        if f.suffix.lower() in _IMAGE_EXT and m:
            files[int(m.group(1))] = f
    return files


def isbi2012_datalist(
    dataset_dir: str | Path, indices: Sequence[int] | None = None, labelled: bool = True
) -> list[dict]:
    """Items ``{"image": path, "label": path, "index": k}`` for the slices of an ISBI 2012 folder.

    Two layouts are recognised:

    - slices: ``dataset_dir/image/NN.png`` with ``dataset_dir/label/NN.png`` (``labelled=False``: the
      images may also lie directly in ``dataset_dir``, as the test set does);
    - stacks: ``dataset_dir/train-volume.tif`` and ``dataset_dir/train-labels.tif`` (multi-page TIFF, as the
      challenge distributes them; ``test-volume.tif`` when ``labelled=False``). Each item then names the
      stack and the page in ``"slice"`` (and ``"index"``): load it with ``LoadImaged`` and pick the page with
      :py:class:`~monai_unet2015.transforms.SelectSliced`.

    In the labels 255 marks cell interior and 0 membrane.

    Args:
        dataset_dir: the folder.
        indices: slice numbers to keep (default: all), e.g. ``range(0, 20)`` for a training split.
        labelled: whether labels are required.

    Examples::

        >>> items = isbi2012_datalist("../shared/data/isbi2012/train", indices=[0, 1])  # doctest: +SKIP
        >>> items[0]["image"], items[0]["index"]  # doctest: +SKIP
        ('../shared/data/isbi2012/train/image/00.png', 0)
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise ValueError(f"dataset_dir {str(root)!r} is not a folder.")
    stack = root / ("train-volume.tif" if labelled else "test-volume.tif")
    if stack.is_file():
        import tifffile

        with tifffile.TiffFile(stack) as tif:
            shape = tif.series[0].shape
        n = shape[0] if len(shape) == 3 else 1
        label_stack = root / "train-labels.tif"
        if labelled and not label_stack.is_file():
            raise ValueError(f"dataset_dir {str(root)!r}: found {stack.name} but no train-labels.tif beside it.")
        items = [
            {"image": str(stack), "slice": k, "index": k} | ({"label": str(label_stack)} if labelled else {})
            for k in range(n)
        ]
    else:
        image_dir = root / "image" if (root / "image").is_dir() else root
        images = _numbered(image_dir)
        if not images:
            raise ValueError(
                f"dataset_dir {str(root)!r}: no ISBI 2012 layout found; expected image/NN.png (+ label/NN.png) "
                "or train-volume.tif (+ train-labels.tif)."
            )
        labels = _numbered(root / "label") if (root / "label").is_dir() else {}
        if labelled:
            missing = sorted(set(images) - set(labels))
            if missing:
                raise ValueError(f"dataset_dir {str(root)!r}: no label/NN file for slices {missing}.")
        items = [{"image": str(images[k]), "index": k} | ({"label": str(labels[k])} if labelled else {}) for k in images]
    if indices is not None:
        wanted = {int(i) for i in indices}
        unknown = sorted(wanted - {it["index"] for it in items})
        if unknown:
            raise ValueError(f"indices {unknown} not in {str(root)!r}; available: {[it['index'] for it in items]}.")
        items = [it for it in items if it["index"] in wanted]
    return items

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

import numpy as np
import torch

from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import convert_to_dst_type

__all__ = ["isbi2012_datalist", "SelectSliced", "SelectSliceD", "SelectSliceDict"]

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
      :py:class:`SelectSliced`.

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


class SelectSliced(MapTransform):
    """Pick page ``data[slice_key]`` along ``axis`` of a loaded channel-first stack.

    ``LoadImaged(..., ensure_channel_first=True)`` with MONAI's default (ITK) reader loads a multi-page TIFF
    as ``(1, W, H, pages)``, hence the default ``axis=-1``, giving ``(1, W, H)`` like a single PNG slice.
    Items without ``slice_key`` pass through unchanged, so one pipeline serves the slice and the stack layouts.

    Examples::

        >>> import torch
        >>> out = SelectSliced("image")({"image": torch.arange(24.0).reshape(1, 3, 4, 2), "slice": 1})
        >>> out["image"].shape
        torch.Size([1, 3, 4])
    """

    def __init__(self, keys: KeysCollection, slice_key: str = "slice", axis: int = -1, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.slice_key = slice_key
        self.axis = axis

    def __call__(self, data):
        d = dict(data)
        if self.slice_key not in d:
            return d
        k = int(d[self.slice_key])
        for key in self.key_iterator(d):
            img = d[key]
            if img.shape[self.axis] <= k:
                raise ValueError(f"{key}: slice {k} out of range for a stack of shape {tuple(img.shape)}.")
            index = [slice(None)] * img.ndim
            index[self.axis] = k
            out = img[tuple(index)]
            d[key] = out if isinstance(out, torch.Tensor) else convert_to_dst_type(np.asarray(out), img)[0]
        return d


SelectSliceD = SelectSliceDict = SelectSliced

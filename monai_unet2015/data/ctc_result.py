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

"""The Cell Tracking Challenge result layout: a sequence's instances as ``NN_RES/maskTTT.tif``.

The challenge's evaluation software (SEG, TRA, DET measures) reads a sequence ``NN``'s results from the folder
``NN_RES`` beside the data: one 16-bit TIFF ``maskTTT.tif`` per frame ``tTTT.tif`` (three digits, four for
sequences of 1000 frames or more), 0 = background, each object one id. :py:class:`SaveCTCResultd` writes that
layout from a bundle's instance map, naming sequence and frame after the input file ``.../NN/tTTT.tif``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import TransformBackends

from ..bundle.errors import BundleInputError

__all__ = ["ctc_result_path", "write_ctc_mask", "SaveCTCResultd", "SaveCTCResultD", "SaveCTCResultDict"]

_FRAME = re.compile(r"^t(\d+)$")


def ctc_result_path(image_path: str | Path, output_dir: str | Path, sequence: str | None = None, digits: int = 3) -> Path:
    """``output_dir/NN_RES/maskTTT.tif`` for the frame ``.../NN/tTTT.tif``.

    Args:
        image_path: the frame's file, named ``tTTT.tif`` as in the challenge's data.
        output_dir: the folder that receives ``NN_RES``.
        sequence: the sequence name ``NN`` (default: the frame's folder name).
        digits: digits of the frame number (3; 4 is used anyway for frames >= 1000).

    Examples::

        >>> str(ctc_result_path("/data/DIC-C2DH-HeLa/01/t007.tif", "/results"))
        '/results/01_RES/mask007.tif'
    """
    path = Path(image_path)
    stem = path.name.split(".")[0]
    match = _FRAME.match(stem)
    if match is None:
        raise BundleInputError(
            f"{path}: Cell Tracking Challenge frames are named tTTT.tif (e.g. t007.tif); rename the frames or "
            "turn --ctc_result off."
        )
    frame = int(match.group(1))
    seq = str(sequence) if sequence is not None else path.parent.name
    width = max(int(digits), len(str(frame)))
    return Path(output_dir) / f"{seq}_RES" / f"mask{frame:0{width}d}.tif"


def write_ctc_mask(path: str | Path, instances: np.ndarray) -> Path:
    """Write a (Y, X) instance map as the challenge's uint16 mask, atomically (a temporary file renamed).

    Examples::

        >>> import tempfile, numpy as np, tifffile
        >>> p = write_ctc_mask(tempfile.mkdtemp() + "/01_RES/mask000.tif", np.array([[0, 3], [3, 7]]))
        >>> tifffile.imread(p).dtype.name, tifffile.imread(p).tolist()
        ('uint16', [[0, 3], [3, 7]])
    """
    arr = np.asarray(instances)
    if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.uint16).max):
        raise ValueError(f"a CTC mask holds ids 0..65535, got {arr.min()}..{arr.max()}.")
    if not np.array_equal(arr, np.round(arr)):
        raise ValueError("a CTC mask holds integer instance ids, got non-integer values.")
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.tif")
    tifffile.imwrite(tmp, arr.astype(np.uint16), photometric="minisblack", compression="zlib")
    os.replace(tmp, path)
    return path


class SaveCTCResultd(MapTransform):
    """
    Write the instance map under ``key`` in the Cell Tracking Challenge result layout (see the module).

    The instance map is channel-first in MONAI's (x, y) indexing, as the bundles produce it, and is written in
    the frame's own (row, column) layout. The frame is named by the ``filename_or_obj`` of ``meta_key``'s meta.

    Args:
        keys: key of the instance map, e.g. ``"instances"``.
        output_dir: the folder that receives ``NN_RES``.
        sequence: the sequence name (default: the folder name of each frame).
        meta_key: the key whose meta names the frame (the image).
        allow_missing_keys: don't raise for missing keys.

    Examples::

        >>> import tempfile, torch, tifffile
        >>> from monai.data import MetaTensor
        >>> out = tempfile.mkdtemp()
        >>> image = MetaTensor(torch.zeros(1, 3, 2), meta={"filename_or_obj": "/data/01/t005.tif"})
        >>> d = SaveCTCResultd("instances", out)({"image": image, "instances": torch.tensor([[[0, 1], [0, 1], [2, 2]]])})
        >>> tifffile.imread(f"{out}/01_RES/mask005.tif").tolist()
        [[0, 0, 2], [1, 1, 2]]
    """

    backend = [TransformBackends.NUMPY, TransformBackends.TORCH]

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | Path,
        sequence: str | None = None,
        meta_key: str = "image",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.sequence = None if sequence in (None, "") else str(sequence)
        self.meta_key = meta_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            src = d.get(self.meta_key, d[key])
            meta = getattr(src, "meta", None) or getattr(d[key], "meta", None) or {}
            name = meta.get("filename_or_obj")
            name = name[0] if isinstance(name, (list, tuple)) else name
            if not name:
                raise ValueError(f"SaveCTCResultd: no 'filename_or_obj' in the meta of {self.meta_key!r}.")
            n = meta.get("num_slices", 0)
            if int(np.asarray(n.cpu() if hasattr(n, "cpu") else n).reshape(-1)[0] if np.size(n) else 0) > 0:
                raise BundleInputError(f"{name}: the CTC result layout holds 2D frames tTTT.tif, not stacks.")
            value = d[key]
            arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
            if arr.ndim != 3 or arr.shape[0] != 1:
                raise ValueError(f"SaveCTCResultd writes (1, x, y) instance maps, got shape {arr.shape}.")
            write_ctc_mask(ctc_result_path(name, self.output_dir, self.sequence), arr[0].T)
        return d


SaveCTCResultD = SaveCTCResultDict = SaveCTCResultd

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

"""Writers of a 2D bundle's results: one file per 2D image, one stack per TIFF stack, never half a stack.

:py:class:`SaveSlicesd` is the writing end of :py:class:`~monai_unet2015.data.images.LoadSliced`: results of
a 2D image are written as ``<stem>_<postfix><ext>`` (as MONAI's ``SaveImaged`` names them); results of the
slices of a stack are gathered into one (Z, Y, X) TIFF stack of the input's shape (``stack_mode="tiff"``,
written to a ``.partial`` file that is renamed only when its last slice is in) or written as one file per
slice ``<stem>_<postfix>_z0000<ext>`` (``stack_mode="slices"``, e.g. for PNG overlays).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.utils import TransformBackends, convert_to_numpy, look_up_option

__all__ = ["SaveSlicesd", "SaveSlicesD", "SaveSlicesDict", "output_stem", "STACK_MODES"]

STACK_MODES = ("tiff", "slices")
_EXTS = (".tif", ".tiff", ".png")


def output_stem(filename: str | Path) -> str:
    """The file name without its suffix (two for ``.nii.gz``), as the bundles name their outputs.

    Examples::

        >>> output_stem("/data/isbi2012_test_00.png"), output_stem("vol.nii.gz")
        ('isbi2012_test_00', 'vol')
    """
    name = Path(filename).name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else Path(name).stem


def _as_int(value: Any, default: int) -> int:
    if value is None:
        return default
    value = convert_to_numpy(value, wrap_sequence=True).reshape(-1)
    return int(value[0]) if value.size else default


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, (list, tuple)) else value


class SaveSlicesd(MapTransform):
    """
    Write channel-first 2D results in MONAI's (x, y) indexing (as the bundles' networks see images) to files
    in the usual (row, column) layout; the slices of a stack go into one stack (see the module docstring).

    One channel is written as a grey image, three as RGB (e.g. an overlay). ``scale`` maps [0, 1] to
    ``[0, scale]``; integer ``output_dtype`` values are rounded and clipped to the type's range.

    Args:
        keys: keys of the results to write.
        output_dir: folder of the outputs (created).
        output_postfix: appended to the input's stem, ``<stem>_<postfix><ext>``.
        output_ext: ``".tif"`` or ``".png"`` for 2D images; stacks in ``"tiff"`` mode are always ``.tif``.
        output_dtype: numpy dtype of the written values (default: the data's own).
        scale: multiply by this after clipping to [0, 1] (e.g. 255 for a 0/1 mask in a PNG).
        stack_mode: ``"tiff"`` (one (Z, Y, X) stack per input stack) or ``"slices"`` (one file per slice).
        meta_key: the key whose ``MetaTensor`` meta names the input (``filename_or_obj``, ``slice_index``,
            ``num_slices``), by default the image; the result's own meta is used when that key is missing.
        allow_missing_keys: don't raise for missing keys.

    Examples::

        >>> import tempfile, torch
        >>> from monai.data import MetaTensor
        >>> out = tempfile.mkdtemp()
        >>> image = MetaTensor(torch.zeros(1, 4, 3), meta={"filename_or_obj": "a.png"})
        >>> d = SaveSlicesd("mask", out, "mask", ".png", "uint8", scale=255)({"image": image, "mask": torch.ones(1, 4, 3)})
        >>> import numpy as np; from PIL import Image
        >>> np.asarray(Image.open(f"{out}/a_mask.png")).shape
        (3, 4)
    """

    backend = [TransformBackends.NUMPY, TransformBackends.TORCH]

    def __init__(
        self,
        keys: KeysCollection,
        output_dir: str | Path,
        output_postfix: str,
        output_ext: str = ".tif",
        output_dtype: Any = None,
        scale: float | None = None,
        stack_mode: str = "tiff",
        meta_key: str = "image",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.output_postfix = str(output_postfix)
        self.output_ext = look_up_option(str(output_ext).lower(), _EXTS)
        self.output_dtype = None if output_dtype is None else np.dtype(output_dtype)
        self.scale = None if scale is None else float(scale)
        self.stack_mode = look_up_option(stack_mode, STACK_MODES)
        self.meta_key = meta_key
        self._stacks: dict[Path, tuple[Any, set[int], Path]] = {}

    def _array(self, value: Any) -> np.ndarray:
        arr = convert_to_numpy(value, dtype=np.float64, wrap_sequence=True)
        if arr.ndim != 3 or arr.shape[0] not in (1, 3):
            raise ValueError(f"SaveSlicesd writes (1|3, x, y) arrays, got shape {arr.shape}.")
        arr = arr[0].T if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1).transpose(1, 0, 2)
        if self.scale is not None:
            arr = np.clip(arr, 0.0, 1.0) * self.scale
        dtype = self.output_dtype or np.dtype(np.float32)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            arr = np.clip(np.rint(arr), info.min, info.max)
        return arr.astype(dtype)

    def _write(self, path: Path, arr: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial" + path.suffix)
        if path.suffix == ".png":
            from PIL import Image

            Image.fromarray(arr).save(tmp, format="PNG")
        else:
            import tifffile

            tifffile.imwrite(tmp, arr, photometric="rgb" if arr.ndim == 3 else "minisblack")
        os.replace(tmp, path)

    def _write_slice(self, path: Path, arr: np.ndarray, z: int, n: int) -> None:
        import tifffile

        entry = self._stacks.get(path)
        if entry is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".partial.tif")
            photometric = "rgb" if arr.ndim == 3 else "minisblack"
            stack = tifffile.memmap(tmp, shape=(n, *arr.shape), dtype=arr.dtype, photometric=photometric)
            entry = self._stacks[path] = (stack, set(), tmp)
        stack, done, tmp = entry
        stack[z] = arr
        done.add(z)
        if len(done) == n:
            stack.flush()
            del self._stacks[path], stack, entry
            os.replace(tmp, path)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            src = d.get(self.meta_key, d[key])
            meta = getattr(src, "meta", None) or getattr(d[key], "meta", None) or {}
            filename = _first(meta.get("filename_or_obj"))
            if not filename:
                raise ValueError(f"SaveSlicesd: no 'filename_or_obj' in the meta of {self.meta_key!r} to name the output.")
            z, n = _as_int(meta.get("slice_index"), -1), _as_int(meta.get("num_slices"), 0)
            arr = self._array(d[key])
            stem = f"{output_stem(filename)}_{self.output_postfix}"
            if n <= 0:
                self._write(self.output_dir / f"{stem}{self.output_ext}", arr)
            elif self.stack_mode == "slices":
                self._write(self.output_dir / f"{stem}_z{z:04d}{self.output_ext}", arr)
            else:
                self._write_slice(self.output_dir / f"{stem}.tif", arr, z, n)
        return d


SaveSlicesD = SaveSlicesDict = SaveSlicesd

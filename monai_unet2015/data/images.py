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

"""The images a 2D bundle segments: a datalist of files, folders and TIFF stacks, and the loader of one slice.

A 2D bundle segments 2D images (PNG, TIFF, JPEG, ...) and (Z, Y, X) TIFF stacks, the format of the ISBI 2012
challenge (``train-volume.tif``) and of most EM data, slice by slice. :py:func:`image_datalist` expands each
stack into one item per slice (``{"image": path, "slice": z, "num_slices": n}``), :py:class:`LoadSliced`
reads one slice, and :py:class:`~monai_unet2015.data.writers.SaveSlicesd` writes the results of a stack's
slices back into one stack of the same shape. Every 2D transform of a bundle thus sees 2D images only, and
each slice of a stack is segmented exactly as the same slice on its own.

What the loader does with other input (the same in the bundles and in ``python -m monai_unet2015 segment``):

- colour (RGB / RGBA, interleaved or planar TIFF): segmented in grey, ``0.299 R + 0.587 G + 0.114 B``
  (ITU-R 601, PIL's ``"L"``), with a logged note;
- NaN or infinite pixels: refused before inference, naming the file and the number of bad pixels;
- a 3D volume that is not a TIFF stack (NIfTI, MHA, NRRD, ...): refused unless ``volume_as_slices`` is set,
  then segmented slice by slice along its last axis.
"""

from __future__ import annotations

import glob as _glob
import logging
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends

from ..bundle.errors import BundleInputError

__all__ = [
    "image_datalist",
    "read_slice",
    "LoadSlice",
    "LoadSliced",
    "LoadSliceD",
    "LoadSliceDict",
    "PIL_SUFFIXES",
    "TIFF_SUFFIXES",
]

logger = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
#: formats read through MONAI's ``LoadImage`` (NIfTI, ITK); these can hold 3D volumes
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr", ".npy", ".dcm")
_IMAGE_SUFFIXES = TIFF_SUFFIXES + PIL_SUFFIXES + VOLUME_SUFFIXES
_GREY = np.array([0.299, 0.587, 0.114])


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _tiff_layout(path: Path) -> tuple[int, bool]:
    """(number of slices, colour) of a TIFF, from its header only; 0 slices means a 2D image."""
    with _open_tiff(path) as tf:
        return _series_layout(path, tf.series[0])


def _open_tiff(path: Path) -> Any:
    import tifffile

    try:
        tf = tifffile.TiffFile(path)
        tf.series[0]  # parse the header now: a broken file fails here, with the file's name
        return tf
    except Exception as e:
        raise BundleInputError(f"{path} is not a readable TIFF ({str(e).splitlines()[0][:160]}).") from None


def _series_layout(path: Path, series: Any) -> tuple[int, bool]:
    axes, shape = series.axes, series.shape
    colour = "S" in axes and shape[axes.index("S")] in (3, 4)
    extra = [(a, n) for a, n in zip(axes, shape) if a not in "YXS" and n > 1]
    if len(extra) > 1:
        raise BundleInputError(
            f"{path} has axes {axes} {tuple(shape)}; a 2D bundle reads 2D images and (Z, Y, X) stacks only: "
            "save one stack per channel / time point."
        )
    return (extra[0][1] if extra else 0), colour


def _volume(path: Path) -> np.ndarray:
    from monai.transforms import LoadImage

    try:
        return np.asarray(LoadImage(image_only=True)(str(path)))
    except Exception as e:
        raise BundleInputError(f"{path} could not be read ({str(e).splitlines()[0][:160]}).") from None


def _num_slices(path: Path, volume_as_slices: bool) -> int:
    suffix = _suffix(path)
    if suffix in TIFF_SUFFIXES:
        return _tiff_layout(path)[0]
    if suffix in PIL_SUFFIXES:
        return 0
    if suffix not in VOLUME_SUFFIXES:
        raise BundleInputError(
            f"{path}: unsupported file type {suffix or '(none)'}; a 2D bundle reads "
            f"{', '.join(TIFF_SUFFIXES + PIL_SUFFIXES)} images (and {', '.join(VOLUME_SUFFIXES)} with 2D content)."
        )
    arr = _volume(path)
    if arr.ndim == 2:
        return 0
    if arr.ndim == 3:
        if not volume_as_slices:
            raise BundleInputError(
                f"{path} is a 3D volume {tuple(arr.shape)}, and this is a 2D bundle: pass --volume_as_slices true "
                "to segment it slice by slice along its last axis (TIFF stacks are always segmented by slice)."
            )
        return int(arr.shape[-1])
    raise BundleInputError(f"{path} has {arr.ndim} dimensions {tuple(arr.shape)}; a 2D bundle reads 2D images.")


def _files_in(folder: Path, pattern: str) -> list[Path]:
    return sorted(Path(f) for f in _glob.glob(str(folder / pattern)) if Path(f).is_file())


def _describe_folder(folder: Path, pattern: str) -> str:
    files = sorted(f for f in folder.iterdir() if f.is_file())
    if not files:
        subdirs = sorted(d.name for d in folder.iterdir() if d.is_dir())
        return "it is empty" if not subdirs else f"it holds no file, only the folders {', '.join(subdirs[:5])}"
    kinds = Counter(_suffix(f) or "(no suffix)" for f in files)
    listed = ", ".join(f"{n} {s}" for s, n in kinds.most_common(5))
    images = [s for s, _ in kinds.most_common() if s in TIFF_SUFFIXES + PIL_SUFFIXES + VOLUME_SUFFIXES]
    hint = f"; e.g. --image_glob '*{images[0]}'" if images else "; it holds no image file"
    return f"it holds {len(files)} files ({listed}: {', '.join(f.name for f in files[:3])}{', ...' if len(files) > 3 else ''}){hint}"


def image_datalist(
    paths: str | Path | Sequence[str | Path], image_glob: str = "*", volume_as_slices: Any = False
) -> list[dict]:
    """The datalist of a 2D bundle's inference: one item per 2D image, one per slice of a stack.

    Args:
        paths: a folder (its files matching ``image_glob``), an image file, or a list of folders and files.
        image_glob: file pattern inside folders, e.g. ``"*.png"``; of the matching files, those with an image
            suffix are used (a README beside the images is skipped), while a file named directly must be one.
        volume_as_slices: segment 3D volumes that are not TIFF stacks (NIfTI, ...) slice by slice along their
            last axis; without it they are refused (read with :py:func:`~monai_unet2015.bundle.as_bool`).

    Returns:
        ``[{"image": path, "slice": z, "num_slices": n}, ...]``, ``slice`` ``-1`` and ``num_slices`` ``0`` for
        2D images.

    Raises:
        BundleInputError: a missing path, a folder without matching files (the message names the folder, the
            pattern and what the folder holds), an unsupported or unreadable file, a volume without
            ``volume_as_slices``.

    Examples::

        >>> import tempfile, numpy as np, tifffile
        >>> d = tempfile.mkdtemp()
        >>> tifffile.imwrite(f"{d}/stack.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack")
        >>> [(item["slice"], item["num_slices"]) for item in image_datalist(d, "*.tif")]
        [(0, 3), (1, 3), (2, 3)]
    """
    from ..bundle.options import as_bool

    volume_as_slices = as_bool(volume_as_slices, "volume_as_slices")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise BundleInputError("no input given: pass --dataset_dir (a folder or an image file).")
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = [f for f in _files_in(p, image_glob) if _suffix(f) in _IMAGE_SUFFIXES]
            if not found:
                raise BundleInputError(
                    f"--dataset_dir {p} has no file matching --image_glob {image_glob!r}: "
                    f"{_describe_folder(p, image_glob)}."
                )
            files += found
        elif p.is_file():
            files.append(p)
        elif _glob.has_magic(str(p)) and _files_in(Path("."), str(p)):
            files += _files_in(Path("."), str(p))
        else:
            raise BundleInputError(f"--dataset_dir {p} does not exist (give a folder of images or an image file).")
    items = []
    for f in files:
        n = _num_slices(f, volume_as_slices)
        if n == 0:
            items.append({"image": str(f), "slice": -1, "num_slices": 0})
        else:
            items += [{"image": str(f), "slice": z, "num_slices": n} for z in range(n)]
    return items


def _to_grey(arr: np.ndarray, channel_axis: int, path: Path) -> np.ndarray:
    logger.warning("%s is a colour image: segmenting its grey value 0.299 R + 0.587 G + 0.114 B.", path.name)
    rgb = np.moveaxis(arr, channel_axis, -1)[..., :3].astype(np.float64)
    return rgb @ _GREY


def read_slice(path: str | Path, slice_index: int = -1) -> np.ndarray:
    """One 2D image (``slice_index`` -1) or slice ``slice_index`` of a stack, grey, float32, shape (Y, X).

    Colour is converted to grey with a logged note; non-finite pixels raise
    :py:class:`~monai_unet2015.bundle.errors.BundleInputError` naming the file and their number.

    Examples::

        >>> import tempfile, numpy as np, tifffile
        >>> f = tempfile.mkdtemp() + "/stack.tif"
        >>> tifffile.imwrite(f, np.arange(24, dtype=np.uint8).reshape(2, 3, 4), photometric="minisblack")
        >>> read_slice(f, 1)[0].tolist()
        [12.0, 13.0, 14.0, 15.0]
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix in TIFF_SUFFIXES:
        with _open_tiff(path) as tf:  # one open per slice: the layout from the same header
            series = tf.series[0]
            n, colour = _series_layout(path, series)
            if n and len(series.pages) == n:
                page = series.pages[slice_index]
                arr, axes = page.asarray(), page.axes
            else:
                arr = series.asarray()
                axes = series.axes
                if n:  # the stack axis is the one non-YXS axis longer than 1
                    k = next(i for i, (a, s) in enumerate(zip(axes, arr.shape)) if a not in "YXS" and s > 1)
                    arr, axes = np.take(arr, slice_index, axis=k), axes[:k] + axes[k + 1:]
                keep = tuple(slice(None) if a in "YXS" else 0 for a in axes)
                arr, axes = arr[keep], "".join(a for a in axes if a in "YXS")
        if colour and "S" in axes:
            arr = _to_grey(arr, axes.index("S"), path)
    elif suffix in PIL_SUFFIXES:
        from PIL import Image

        with Image.open(path) as im:
            if im.mode in ("P", "PA"):
                im = im.convert("RGBA")
            arr = np.asarray(im)
        if arr.ndim == 3:
            arr = arr[..., 0] if arr.shape[-1] == 2 else _to_grey(arr, -1, path)  # LA: grey + alpha
    else:
        arr = _volume(path)
        if slice_index >= 0 and arr.ndim == 3:
            arr = arr[..., slice_index]
        arr = arr.T  # MONAI's readers index (x, y); back to (y, x)
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise BundleInputError(f"{path}: expected a 2D image, got an array of shape {arr.shape}.")
    arr = arr.astype(np.float32)
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        where = f" (slice {slice_index})" if slice_index >= 0 else ""
        raise BundleInputError(
            f"{path}{where} has {bad} NaN or infinite pixels; replace them (e.g. by the image median) "
            "before segmenting: the network would spread them over the whole probability map."
        )
    return arr


class LoadSlice(Transform):
    """Load a 2D image or one slice of a stack as a channel-first ``MetaTensor`` in MONAI's (x, y) indexing.

    The array equals ``LoadImage(ensure_channel_first=True)`` of the same 2D file (MONAI's PIL and ITK
    readers index images as (x, y), the transpose of the numpy (row, column) array), so networks trained on
    ``LoadImaged`` input see the same orientation. Its meta holds ``filename_or_obj``, ``slice_index`` (-1
    for a 2D image) and ``num_slices`` (0 for a 2D image), which
    :py:class:`~monai_unet2015.data.writers.SaveSlicesd` uses to write stacks back. See :py:func:`read_slice`
    for colour and non-finite input.

    Examples::

        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> f = tempfile.mkdtemp() + "/x.png"
        >>> Image.fromarray(np.arange(6, dtype=np.uint8).reshape(2, 3)).save(f)
        >>> img = LoadSlice()(f)
        >>> tuple(img.shape), img.meta["num_slices"]
        ((1, 3, 2), 0)
    """

    backend = [TransformBackends.NUMPY]

    def __call__(self, path: str | Path, slice_index: int = -1, num_slices: int = 0) -> MetaTensor:  # type: ignore[override]
        arr = read_slice(path, int(slice_index))
        meta = {
            "filename_or_obj": str(path),
            "slice_index": int(slice_index),
            "num_slices": int(num_slices),
            "spatial_shape": np.array(arr.shape[::-1]),
            "original_channel_dim": float("nan"),
        }
        return MetaTensor(torch.from_numpy(np.ascontiguousarray(arr.T))[None], meta=meta)


class LoadSliced(MapTransform):
    """Dictionary-based :py:class:`LoadSlice`: ``data[key]`` holds the path, ``data[slice_key]`` the slice.

    Args:
        keys: keys of the paths to load.
        slice_key: key of the slice index (missing or -1: a 2D image), as :py:func:`image_datalist` writes it.
        num_slices_key: key of the number of slices of the stack (missing or 0: a 2D image).
        allow_missing_keys: don't raise for missing keys.

    Examples::

        >>> import tempfile, numpy as np, tifffile
        >>> f = tempfile.mkdtemp() + "/stack.tif"
        >>> tifffile.imwrite(f, np.zeros((4, 5, 6), np.uint8), photometric="minisblack")
        >>> d = LoadSliced("image")({"image": f, "slice": 2, "num_slices": 4})
        >>> tuple(d["image"].shape), d["image"].meta["slice_index"]
        ((1, 6, 5), 2)
    """

    backend = LoadSlice.backend

    def __init__(
        self,
        keys: KeysCollection,
        slice_key: str = "slice",
        num_slices_key: str = "num_slices",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.slice_key, self.num_slices_key = slice_key, num_slices_key
        self.loader = LoadSlice()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        z, n = int(d.get(self.slice_key, -1)), int(d.get(self.num_slices_key, 0))
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key], z, n)
        return d


LoadSliceD = LoadSliceDict = LoadSliced

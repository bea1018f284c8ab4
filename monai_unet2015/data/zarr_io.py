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

"""
Images larger than memory on disk: zarr arrays, OME-Zarr images and TIFF / BigTIFF files opened lazily as dask
arrays (a TIFF through tifffile's zarr store, never read whole), and the chunked OME-Zarr output of
out-of-core inference (:py:mod:`monai_unet2015.inferers.zarr_job`).

Needs the optional ``zarr``, ``dask`` and ``ome-zarr`` dependencies (``pip install monai-unet2015[large]``).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from monai.utils import optional_import

zarr, has_zarr = optional_import("zarr")
da, has_dask = optional_import("dask.array")

__all__ = ["LazyImage", "open_lazy", "OutputArray", "create_ome_zarr", "ome_zarr_axes"]

_TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
#: TIFF axis codes (tifffile's ``series.axes``) as OME axis letters
_TIFF_AXES = {"T": "t", "C": "c", "Z": "z", "Y": "y", "X": "x", "Q": "z", "I": "z"}
_SPATIAL_UNITS = {"micron": "micrometer", "um": "micrometer", "\u00b5m": "micrometer", "nm": "nanometer"}


def _require() -> None:
    if not (has_zarr and has_dask):
        raise ImportError("zarr and dask are needed here: pip install 'monai-unet2015[large]'.")


class LazyImage(NamedTuple):
    """An image opened by :py:func:`open_lazy`.

    Attributes:
        data: the voxels, a dask array (nothing read yet).
        axes: one letter per axis from ``"tczyx"`` when the file names them (OME-Zarr, TIFF), else ``None``.
        spacing: voxel size per axis (1.0 for non-spatial axes) when the file states it, else ``None``.
        unit: the spatial unit when stated (e.g. ``"micrometer"``), else ``None``.
        path: the path opened.
        format: ``"ome-zarr"``, ``"zarr"``, ``"tiff"`` or ``"folder"`` (of 2D slices).
    """

    data: Any
    axes: str | None
    spacing: tuple[float, ...] | None
    unit: str | None
    path: str
    format: str


def _supported_dtype(dtype: Any) -> bool:
    """Whether segmentation takes voxels of ``dtype``: integer, float or bool."""
    return any(np.issubdtype(dtype, kind) for kind in (np.integer, np.floating, np.bool_))


def _check_dtype(dtype: np.dtype, key: str, path: str) -> None:
    if not _supported_dtype(dtype):
        raise TypeError(f"{key} {path}: voxels of dtype {dtype} are not supported; give integer, float or bool data.")


def _ome_multiscales(attrs: Mapping) -> list | None:
    ome = attrs.get("ome")
    if isinstance(ome, Mapping) and "multiscales" in ome:  # OME-Zarr 0.5 (zarr v3)
        return ome["multiscales"]
    return attrs.get("multiscales")  # OME-Zarr 0.4 and earlier (zarr v2)


def _open_zarr(path: str, key: str, level: int) -> LazyImage:
    try:
        node = zarr.open(path, mode="r")
    except Exception as e:  # not a zarr node at all
        raise ValueError(
            f"{key} {path}: not a zarr array, an OME-Zarr image, a TIFF file or a folder of 2D images "
            f"({type(e).__name__}: {e})."
        ) from None
    if isinstance(node, zarr.Array):
        names = getattr(node.metadata, "dimension_names", None) or node.attrs.get("_ARRAY_DIMENSIONS")
        letters = [str(n).lower() for n in names or ()]
        axes = "".join(letters) if letters and all(len(n) == 1 and n in "tczyx" for n in letters) else None
        return LazyImage(da.from_zarr(node), axes, None, None, path, "zarr")
    multiscales = _ome_multiscales(node.attrs)
    if not multiscales:
        arrays = sorted(name for name, _ in node.arrays())
        hint = f"; it holds the arrays {arrays}: give one of them, e.g. {path}/{arrays[0]}" if arrays else ""
        raise ValueError(f"{key} {path}: a zarr group without OME-Zarr multiscales metadata{hint}.")
    scale = multiscales[0]
    datasets = scale["datasets"]
    if not 0 <= level < len(datasets):
        raise ValueError(f"{key} {path}: level {level} does not exist (the image has {len(datasets)} levels).")
    arr = node[datasets[level]["path"]]
    axes_meta = scale.get("axes") or []
    names = [a["name"] if isinstance(a, Mapping) else str(a) for a in axes_meta]
    axes = "".join(names).lower() if names and all(len(n) == 1 and n.lower() in "tczyx" for n in names) else None
    units = {a.get("unit") for a in axes_meta if isinstance(a, Mapping) and a.get("type") == "space" and a.get("unit")}
    spacing = None
    for t in datasets[level].get("coordinateTransformations", []):
        if t.get("type") == "scale":
            spacing = tuple(float(v) for v in t["scale"])
    return LazyImage(da.from_zarr(arr), axes, spacing, units.pop() if len(units) == 1 else None, path, "ome-zarr")


def _open_tiff(path: str, key: str, level: int) -> LazyImage:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:  # one open: axes, voxel size, and the level's shape and chunks
            tiff_axes = tif.series[0].axes
            spacing = _tiff_spacing(tif, tiff_axes)
            with tif.aszarr(series=0, level=level) as store:
                node = _tiff_level(store, level)
                shape, dtype, chunks = tuple(node.shape), node.dtype, node.chunks
    except (tifffile.TiffFileError, IndexError, ValueError) as e:
        raise ValueError(f"{key} {path}: not a readable TIFF file ({e}).") from None
    if "S" in tiff_axes:
        raise ValueError(f"{key} {path}: an RGB(A) TIFF (axes {tiff_axes}); give a single-channel image.")
    axes = "".join(_TIFF_AXES.get(a, "?") for a in tiff_axes)
    if "?" in axes or len(set(axes)) != len(axes):
        axes = None
    reader = _TiffBlocks(path, level, shape, dtype)
    data = da.from_array(reader, chunks=chunks, name="tiff-" + _tokenize(path, level, os.path.getmtime(path)))
    return LazyImage(data, axes, spacing[0] if spacing else None, spacing[1] if spacing else None, path, "tiff")


def _tiff_level(store: Any, level: int) -> Any:
    node = zarr.open(store, mode="r")
    return node if isinstance(node, zarr.Array) else node[str(level)]  # a pyramid: one array per level


def _tokenize(*args: Any) -> str:
    from dask.base import tokenize

    return tokenize(*args)


class _TiffBlocks:
    """A TIFF's level as an array-like that dask reads block by block; each process opens the file once, and
    pickling carries only the path (a worker opens its own handle)."""

    def __init__(self, path: str, level: int, shape: tuple[int, ...], dtype: Any) -> None:
        self.path, self.level, self.shape, self.dtype = path, level, shape, np.dtype(dtype)
        self.ndim = len(shape)
        self._node: Any = None

    def __getitem__(self, index: Any) -> np.ndarray:
        if self._node is None:
            import tifffile

            self._node = _tiff_level(tifffile.imread(self.path, aszarr=True, series=0, level=self.level), self.level)
        return np.asarray(self._node[index])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_node": None}


def _tiff_spacing(tif: Any, tiff_axes: str) -> tuple[tuple[float, ...], str | None] | None:
    """Pixel size from the resolution tags (and ImageJ's z spacing), when the file states them."""
    try:
        page = tif.pages[0]
        xres, yres = page.tags["XResolution"].value, page.tags["YResolution"].value
        sx, sy = xres[1] / xres[0], yres[1] / yres[0]
    except (KeyError, ZeroDivisionError, TypeError, IndexError):
        return None
    ij = tif.imagej_metadata or {}
    unit = _SPATIAL_UNITS.get(str(ij.get("unit", "")), None)
    values = {"x": sx, "y": sy, "z": float(ij.get("spacing", 1.0))}
    return tuple(values.get(_TIFF_AXES.get(a, ""), 1.0) for a in tiff_axes), unit


_SLICE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


def _is_zarr(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, f)) for f in ("zarr.json", ".zarray", ".zgroup", ".zattrs"))


def _image_files(path: str) -> dict[str, list[str]]:
    """The 2D image files of a folder by suffix."""
    found: dict[str, list[str]] = {}
    for name in sorted(os.listdir(path)):
        suffix = Path(name).suffix.lower()
        if suffix in _SLICE_SUFFIXES and os.path.isfile(os.path.join(path, name)):
            found.setdefault(suffix, []).append(name)
    return found


def _open_folder(path: str, key: str) -> LazyImage:
    """A folder of 2D images, one slice per file in name order, as a lazy (Z, Y, X) stack (dask's imread)."""
    from dask.array.image import imread

    found = _image_files(path)
    if len(found) > 1:
        kinds = ", ".join(f"{len(v)} {k}" for k, v in found.items())
        raise ValueError(f"{key} {path}: a folder of slices must hold one kind of image file, found {kinds}.")
    (suffix, names), = found.items()
    data = imread(os.path.join(glob.escape(path), "*" + suffix))
    if data.ndim != 3:
        raise ValueError(
            f"{key} {path}: its images are {data.shape[1:]} arrays (RGB?); give single-channel 2D slices."
        )
    return LazyImage(data, "zyx", None, None, path, "folder")


def open_lazy(path: str | os.PathLike, key: str = "input_path", level: int = 0) -> LazyImage:
    """
    Open an image without reading it: a zarr array, an OME-Zarr image (its level ``level``), a TIFF / BigTIFF
    file (read through tifffile's zarr store, strip by strip or tile by tile as the tasks need them), or a folder
    of 2D images (PNG, TIFF, JPEG, BMP: one slice per file, in name order; each read when a task needs it).

    Args:
        path: the ``.zarr`` folder (array or OME-Zarr image group), the TIFF file or the folder of slices.
        key: the name of the argument in error messages (a bundle's ``input_path``).
        level: the resolution level of a multi-scale OME-Zarr image or TIFF pyramid (0: full resolution).

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: ``path`` is neither a zarr array, an OME-Zarr image nor a TIFF file (e.g. a zarr group
            without an image: the message lists its arrays).
        TypeError: the voxels are not integer, float or bool.

    Examples::

        >>> import tempfile, numpy as np, zarr
        >>> path = tempfile.mkdtemp() + "/stack.zarr"
        >>> _ = zarr.create_array(path, shape=(4, 300, 200), chunks=(1, 128, 128), dtype="uint8")
        >>> image = open_lazy(path)
        >>> image.data.shape, image.format, image.axes
        ((4, 300, 200), 'zarr', None)
    """
    _require()
    path = os.path.abspath(os.fspath(path))  # workers may run elsewhere: never a relative path in the graph
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{key} {path}: does not exist (give a .zarr folder, an OME-Zarr image or a TIFF file)."
        )
    if os.path.isfile(path) and Path(path).suffix.lower() in _TIFF_SUFFIXES:
        image = _open_tiff(path, key, level)
    elif os.path.isdir(path) and not _is_zarr(path) and _image_files(path):
        image = _open_folder(path, key)
    elif os.path.isdir(path):
        image = _open_zarr(path, key, level)
    else:
        raise ValueError(
            f"{key} {path}: not a zarr array, an OME-Zarr image, a TIFF file or a folder of 2D images (supported: a "
            f".zarr folder, {', '.join(_TIFF_SUFFIXES)}, a folder of {', '.join(_SLICE_SUFFIXES)} files)."
        )
    _check_dtype(image.data.dtype, key, path)
    return image


class OutputArray(NamedTuple):
    """One array of an OME-Zarr output written by :py:func:`create_ome_zarr`.

    Attributes:
        path: its path inside the group, ``"0"`` for the image, ``"labels/NAME/0"`` for a label image.
        axes: its axes, letters from ``"tczyx"``.
        shape: its shape.
        chunks: its chunk shape (each dask task writes whole chunks).
        dtype: its dtype.
    """

    path: str
    axes: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str


def ome_zarr_axes(axes: str, unit: str | None = None) -> list[dict]:
    """OME-Zarr axis descriptions for axis letters (``t`` time, ``c`` channel, ``z y x`` space).

    Examples::

        >>> ome_zarr_axes("cyx", "micrometer")[1]
        {'name': 'y', 'type': 'space', 'unit': 'micrometer'}
    """
    out = []
    for a in axes:
        kind = {"t": "time", "c": "channel"}.get(a, "space")
        entry = {"name": a, "type": kind}
        if kind == "space" and unit:
            entry["unit"] = unit
        out.append(entry)
    return out


def create_ome_zarr(
    path: str | os.PathLike,
    image: OutputArray,
    labels: Sequence[tuple[str, OutputArray]] = (),
    spacing: Mapping[str, float] | None = None,
    unit: str | None = None,
    name: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """
    Create an OME-Zarr (0.5, zarr v3) image group with the image array, its label images and their metadata:
    axes, the voxel size per axis (``spacing``, 1.0 where not given), ``name`` and ``attributes`` (stored
    under the group's ``"unet2015"`` attribute). The arrays are created empty (zstd-compressed chunks); nothing
    exists at ``path`` yet (checked by the caller).

    Returns:
        the zarr group.
    """
    _require()
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_label_metadata, write_multiscales_metadata

    fmt = FormatV05()
    spacing = dict(spacing or {})
    group = zarr.open_group(os.fspath(path), mode="w-", zarr_format=3)

    def add(where: Any, arr: OutputArray, leaf: str, label_name: str | None) -> None:
        where.create_array(leaf, shape=arr.shape, chunks=arr.chunks, dtype=arr.dtype, fill_value=0)
        scale = [float(spacing.get(a, 1.0)) for a in arr.axes]
        datasets = [{"path": leaf, "coordinateTransformations": [{"type": "scale", "scale": scale}]}]
        axes = ome_zarr_axes(arr.axes, unit)
        write_multiscales_metadata(where, datasets, fmt=fmt, axes=axes, name=label_name or name)

    add(group, image, "0", None)
    if labels:
        label_group = group.create_group("labels")
        label_group.attrs["ome"] = {"version": fmt.version, "labels": []}  # write_label_metadata lists each
        for label_name, arr in labels:
            sub = label_group.create_group(label_name)
            add(sub, arr, "0", label_name)
            write_label_metadata(label_group, label_name, fmt=fmt)
    if attributes:
        group.attrs["unet2015"] = dict(attributes)
    return group

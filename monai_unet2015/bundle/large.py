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

"""The pieces of the bundles' ``configs/inference_large.json``: out-of-core inference of images larger than memory
(:py:func:`monai_unet2015.inferers.segment_to_zarr`) that writes what ``configs/inference.json`` writes.

``inference.json`` loads images with MONAI's readers, which index a 2D image as (x, y) (and a volume as
(x, y, z)): the transpose of the file's numpy (row, column) array, and the orientation the bundles' networks
were trained in. The out-of-core path reads the file's arrays as they are, (y, x). :py:class:`ReverseIndexedNetwork`
and :py:class:`ReverseIndexedTransform` run the network and the instance step on the reversed spatial axes and
reverse the result back, so that every pixel gets the value ``inference.json`` gives it (the network is not
symmetric under transposition: the two orientations differ by up to 0.97 in the EM membrane probability).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .errors import BundleInputError

__all__ = [
    "ReverseIndexedNetwork",
    "ReverseIndexedTransform",
    "check_large_inputs",
    "whole_slice_chunks",
    "tta_inferer",
    "LARGE_PACKAGES",
]

#: the modules out-of-core inference needs: the ``large`` extra (``pip install 'monai-unet2015[large]'``)
LARGE_PACKAGES = ("dask", "distributed", "zarr", "ome_zarr")


def _reversed_spatial(x: Any, spatial_dims: int) -> Any:
    """``x`` (tensor or array) with its last ``spatial_dims`` axes in reverse order."""
    lead = list(range(x.ndim - spatial_dims))
    order = lead + list(range(x.ndim - 1, x.ndim - 1 - spatial_dims, -1))
    return x.permute(order) if isinstance(x, torch.Tensor) else np.transpose(x, order)


class ReverseIndexedNetwork(torch.nn.Module):
    """``network`` applied to images in numpy's (y, x) / (z, y, x) order as if MONAI's readers had loaded them.

    ``forward(x)`` reverses the spatial axes of ``x`` (``(N, C, *spatial)``), runs ``network`` and reverses the
    output's spatial axes back. With a valid-padding network whose tiles sit on its grid, every output pixel is
    that of ``network`` on the reversed image, so overlap-tile inference of the (y, x) array equals the bundles'
    inference of the (x, y) image, transposed. The wrapped network stays reachable as ``module`` (its geometry
    and channels are read from it) and loads its own state dict: checkpoints load unchanged.

    Args:
        network: the network as the bundle builds it (``network_def``).

    Examples::

        >>> from monai_unet2015.networks.nets import UNet2015
        >>> net = UNet2015(features=(4, 8, 16), dropout=0.0).eval()
        >>> x = torch.rand(1, 1, 100, 84)
        >>> y = ReverseIndexedNetwork(net)(x)
        >>> torch.allclose(y, net(x.transpose(-1, -2)).transpose(-1, -2)), tuple(y.shape)
        (True, (1, 2, 60, 44))
    """

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        if not isinstance(network, torch.nn.Module):
            raise TypeError(f"network must be a torch.nn.Module, got {type(network).__name__}.")
        self.module = network
        dims = getattr(network, "spatial_dims", 2)
        self.spatial_dims = int(dims) if isinstance(dims, int) and not isinstance(dims, bool) else 2
        for name in ("in_channels", "out_channels"):
            value = getattr(network, name, None)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output for ``x`` in numpy order, in numpy order."""
        return _reversed_spatial(self.module(_reversed_spatial(x, self.spatial_dims)), self.spatial_dims)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """Load the wrapped network's state dict (its keys as a bundle checkpoint holds them)."""
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)


class ReverseIndexedTransform:
    """``transform`` (of a channel-first map ``(C, *spatial)``) applied on the reversed spatial axes, its result
    reversed back: the instance step of ``inference.json`` on a map in numpy order.

    Instance ids and watershed ties depend on the scan order, so the instances equal those ``inference.json``
    computes on its (x, y) map only when computed in that order. The ``repr`` names the transform and its
    parameters (it identifies the job of an out-of-core output that is resumed).

    Args:
        transform: an array transform such as
            :py:class:`~monai_unet2015.transforms.instances.watershed.WatershedInstances`.
        spatial_dims: the number of spatial axes.

    Examples::

        >>> from monai_unet2015.transforms.instances.watershed import WatershedInstances
        >>> prob = torch.zeros(1, 8, 12); prob[0, 1:7, 1:5] = 0.9; prob[0, 1:7, 6:11] = 0.9
        >>> step = ReverseIndexedTransform(WatershedInstances(0.5, 0.8, min_size=3))
        >>> labels = step(prob)
        >>> tuple(labels.shape), int(labels.max()), int(labels[0, 2, 2]), int(labels[0, 2, 8])
        ((1, 8, 12), 2, 1, 2)
    """

    def __init__(self, transform: Callable[[Any], Any], spatial_dims: int = 2) -> None:
        if not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}.")
        self.transform = transform
        self.spatial_dims = int(spatial_dims)

    def __call__(self, img: Any) -> Any:
        """``transform`` of ``img`` (numpy order) computed in MONAI's order, returned in numpy order."""
        return _reversed_spatial(self.transform(_reversed_spatial(img, self.spatial_dims)), self.spatial_dims)

    def __repr__(self) -> str:
        inner = self.transform
        params = ", ".join(f"{k}={v!r}" for k, v in sorted(vars(inner).items()) if not k.startswith("_"))
        return f"{type(self).__name__}({type(inner).__qualname__}({params}), spatial_dims={self.spatial_dims})"


def check_large_inputs(input_path: Any, output_path: Any) -> bool:
    """Check, before any work, the options that ``inference_large.json`` cannot take; returns ``True``.

    Args:
        input_path: the image (``--input_path``); required.
        output_path: the OME-Zarr output (``--output_path``); required, ending in ``.zarr``.

    Raises:
        BundleInputError: a missing path, an output path not ending in ``.zarr``, or a module of
            :py:data:`LARGE_PACKAGES` not installed.

    Examples::

        >>> check_large_inputs("stack.zarr", "out.zarr")
        True
        >>> check_large_inputs("stack.zarr", "out.tif")
        Traceback (most recent call last):
        ...
        monai_unet2015.bundle.errors.BundleInputError: --output_path out.tif: give a folder ending in .zarr ...
    """
    for key, value in (("input_path", input_path), ("output_path", output_path)):
        if value is None or not str(value).strip() or str(value) in ("None", "null"):
            image = "the image: a .zarr array, an OME-Zarr image, a TIFF file or a folder of 2D slices"
            what = image if key == "input_path" else (
                "the OME-Zarr output folder to write, e.g. /data/out.zarr")
            raise BundleInputError(f"--{key} is required: give {what}.")
    if not str(output_path).rstrip("/").endswith(".zarr"):
        raise BundleInputError(
            f"--output_path {output_path}: give a folder ending in .zarr (the OME-Zarr output), e.g. "
            f"{str(output_path).rstrip('/')}.zarr."
        )
    missing = [m for m in LARGE_PACKAGES if importlib.util.find_spec(m) is None]
    if missing:
        raise BundleInputError(
            f"inference_large.json needs {', '.join(missing)}, which are not installed: "
            "pip install 'monai-unet2015[large]' (or make install in a clone)."
        )
    return True


#: a chunk edge longer than any image: ``chunk_layout`` cuts it to the image's size (one chunk per slice)
_WHOLE = 1 << 30


def whole_slice_chunks(chunk_size: Any, instances: bool) -> Any:
    """The ``chunk_size`` for :py:func:`~monai_unet2015.inferers.segment_to_zarr`: the one given, else whole
    slices when instances are written (they are not merged across chunks), else ``None`` (the default tiles).

    Examples::

        >>> whole_slice_chunks(None, True) >= 1 << 30, whole_slice_chunks(None, False), whole_slice_chunks(512, True)
        (True, None, 512)
    """
    from .options import is_unset

    if is_unset(chunk_size):
        return _WHOLE if instances else None
    return chunk_size


def tta_inferer(tile_inferer: Any, tta: Any, group: str = "dihedral", device: Any = "auto") -> Any:
    """The inferer of ``inference_large.json``: ``tile_inferer`` alone, or the dihedral test-time augmentation
    around it.

    ``tta`` is ``true`` / ``false`` or ``auto`` (:py:func:`~monai_unet2015.bundle.options.as_bool_or_auto`).
    ``auto`` with an explicit ``device`` averages the group on a GPU only, as ``inference.json`` does; with
    ``device`` ``auto`` the workers choose their own device, so each process that runs the network decides
    (:py:class:`~monai_unet2015.inferers.DihedralTTAInferer` with ``gpu_only``): GPU workers average the group
    even when the process that starts the job has no GPU, CPU workers make one pass.

    Examples::

        >>> from monai_unet2015.inferers import OverlapTileInferer
        >>> tiles = OverlapTileInferer()
        >>> tta_inferer(tiles, "false") is tiles, tta_inferer(tiles, "auto", device="cpu") is tiles
        (True, True)
        >>> tta_inferer(tiles, "auto").gpu_only, tta_inferer(tiles, "true", device="cpu").gpu_only
        (True, False)
    """
    from monai_unet2015.inferers import DihedralTTAInferer

    from .options import as_bool_or_auto, on_gpu_if_auto

    flag = as_bool_or_auto(tta, "tta")
    if flag == "auto" and str(device) == "auto":
        return DihedralTTAInferer(tile_inferer, group=group, gpu_only=True)
    return DihedralTTAInferer(tile_inferer, group=group) if on_gpu_if_auto(flag, "tta", device) else tile_inferer

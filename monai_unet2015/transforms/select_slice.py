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

"""Pick one page of a loaded multi-page stack (e.g. the ISBI 2012 ``train-volume.tif``).

:py:func:`~monai_unet2015.data.isbi2012_datalist` names a stack and the page in ``"slice"``;
``LoadImaged`` loads the whole stack and :py:class:`SelectSliced` keeps that page, so one pipeline serves
the slice and the stack layouts of a dataset.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms.transform import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type

__all__ = ["SelectSlice", "SelectSliced", "SelectSliceD", "SelectSliceDict"]


class SelectSlice(Transform):
    """Pick page ``index`` along ``axis`` of a channel-first stack, dropping that axis.

    ``LoadImage(ensure_channel_first=True)`` with MONAI's default (ITK) reader loads a multi-page TIFF as
    ``(1, W, H, pages)``, hence the default ``axis=-1``, giving ``(1, W, H)`` like a single PNG slice.
    NumPy arrays, tensors and MetaTensors are accepted and returned as the same type (a MetaTensor keeps
    its metadata as they are: the affine is not reduced to the remaining axes).

    Args:
        index: the page to pick; may also be given (or overridden) when calling.
        axis: the axis of the pages, counted on the channel-first array (``-1``: the last one).

    Raises:
        ValueError: ``index`` is out of range for the stack, or no index was given.

    Examples::

        >>> import torch
        >>> stack = torch.arange(24.0).reshape(1, 3, 4, 2)
        >>> SelectSlice(index=1)(stack).shape
        torch.Size([1, 3, 4])
        >>> SelectSlice(axis=1)(stack, index=2).shape
        torch.Size([1, 4, 2])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, index: int | None = None, axis: int = -1) -> None:
        self.index = index
        self.axis = axis

    def __call__(self, img: NdarrayOrTensor, index: int | None = None) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first stack.
            index: the page to pick; default: the ``index`` given at construction.
        """
        index = self.index if index is None else index
        if index is None:
            raise ValueError("SelectSlice: no index given, pass index= at construction or when calling.")
        k = int(index)
        if img.shape[self.axis] <= k:
            raise ValueError(f"slice {k} out of range for a stack of shape {tuple(img.shape)}.")
        selection: list[slice | int] = [slice(None)] * img.ndim
        selection[self.axis] = k
        out = img[tuple(selection)]
        return out if isinstance(out, torch.Tensor) else convert_to_dst_type(np.asarray(out), img)[0]


class SelectSliced(MapTransform):
    """Dictionary-based :py:class:`SelectSlice`: pick page ``data[slice_key]`` along ``axis`` of each key.

    Items without ``slice_key`` pass through unchanged, so one pipeline serves the slice and the stack
    layouts (:py:func:`~monai_unet2015.data.isbi2012_datalist`).

    Args:
        keys: keys of the stacks to slice.
        slice_key: key of the page index in the data dictionary.
        axis: the axis of the pages, counted on the channel-first array (``-1``: the last one).
        allow_missing_keys: don't raise an exception if a key is missing.

    Examples::

        >>> import torch
        >>> out = SelectSliced("image")({"image": torch.arange(24.0).reshape(1, 3, 4, 2), "slice": 1})
        >>> out["image"].shape
        torch.Size([1, 3, 4])
    """

    backend = SelectSlice.backend

    def __init__(
        self, keys: KeysCollection, slice_key: str = "slice", axis: int = -1, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.slice_key = slice_key
        self.axis = axis
        self.selector = SelectSlice(axis=axis)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        if self.slice_key not in d:
            return d
        k = int(d[self.slice_key])
        for key in self.key_iterator(d):
            try:
                d[key] = self.selector(d[key], index=k)
            except ValueError as e:
                raise ValueError(f"{key}: {e}") from None
        return d


SelectSliceD = SelectSliceDict = SelectSliced

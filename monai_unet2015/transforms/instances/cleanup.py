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

"""Clean-up of instance label maps: objects below a size removed, holes of each instance filled.

MONAI's ``RemoveSmallObjects`` and ``FillHoles`` do the same for instance maps, the latter one label at a time;
these work on all instances at once (one ``bincount``; one labelling of the background and a gather at the hole
pixels), so they cost the same for 10 or 10,000 instances. 2D and 3D; numpy, tensor or MetaTensor in, the same
type, shape and metadata out.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_data_type, convert_to_dst_type

from .functional import _as_label_array

__all__ = [
    "remove_small_instances",
    "fill_instance_holes",
    "RemoveSmallInstances",
    "FillInstanceHoles",
    "RemoveSmallInstancesd",
    "RemoveSmallInstancesD",
    "RemoveSmallInstancesDict",
    "FillInstanceHolesd",
    "FillInstanceHolesD",
    "FillInstanceHolesDict",
]


def remove_small_instances(labels: np.ndarray, min_size: int) -> np.ndarray:
    """``labels`` (non-negative integer ids, any dimension) without the instances of fewer than ``min_size`` pixels.

    Examples::

        >>> import numpy as np
        >>> remove_small_instances(np.array([[1, 1, 1, 0, 2, 3, 3]]), 2).tolist()
        [[1, 1, 1, 0, 0, 3, 3]]
    """
    if min_size <= 1 or not labels.any():
        return labels
    small = np.bincount(labels.ravel()) < min_size
    small[0] = False
    return np.where(small[labels], 0, labels)


def fill_instance_holes(labels: np.ndarray) -> np.ndarray:
    """Fill the holes of every instance of ``labels`` (C-contiguous integer ids, 2D or 3D), in place, and return it.

    A hole is background not connected to the image border through face-connected background (as
    ``scipy.ndimage.binary_fill_holes``). A hole whose face neighbours all belong to one instance takes that id
    (a gather at the hole pixels only: they never lie on the border, so every face neighbour exists); a hole
    between several instances gives each pixel the id of its nearest instance pixel (a distance transform on
    the bounding box of those holes, which holds each of their pixels' nearest instance pixel: along each axis
    a hole ends at an instance pixel inside the box grown by one).

    Examples::

        >>> import numpy as np
        >>> ring = np.array([[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0]])
        >>> fill_instance_holes(ring).tolist()
        [[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0]]
    """
    from scipy import ndimage as ndi

    background, _ = ndi.label(labels == 0)
    faces = np.concatenate([np.take(background, i, axis=a).ravel() for a in range(labels.ndim) for i in (0, -1)])
    is_hole = np.ones(int(background.max()) + 1, dtype=bool)
    is_hole[0] = False
    is_hole[faces] = False
    holes = is_hole[background]
    if not holes.any():
        return labels
    at = np.flatnonzero(holes)
    steps = np.cumprod((1,) + labels.shape[:0:-1])[::-1]  # C-order strides in pixels
    near = labels.reshape(-1)[at[:, None] + np.concatenate([steps, -steps])[None]]
    big = np.iinfo(labels.dtype).max
    group = background.reshape(-1)[at]
    highest = np.zeros(is_hole.size, dtype=labels.dtype)
    np.maximum.at(highest, group, near.max(axis=1))
    lowest = np.full(is_hole.size, big, dtype=labels.dtype)
    np.minimum.at(lowest, group, np.where(near > 0, near, big).min(axis=1))
    labels.reshape(-1)[at] = np.where(highest == lowest, highest, 0)[group]
    shared = holes & (labels == 0)
    if shared.any():
        box = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in np.nonzero(shared))
        crop, hole = labels[box], shared[box]
        idx = ndi.distance_transform_edt(crop == 0, return_distances=False, return_indices=True)
        crop[hole] = crop[tuple(i[hole] for i in idx)]
    return labels


def _check_size(value: Any, name: str) -> int:
    """A size in pixels (an int >= 0, not a bool), or a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an int >= 0 (pixels), got {value!r}.")
    return int(value)


def _channels(img: NdarrayOrTensor, name: str) -> np.ndarray:
    arr = convert_data_type(img, np.ndarray)[0]
    if arr.ndim not in (3, 4):
        raise ValueError(f"{name} expects channel-first instance labels (C, H, W) or (C, D, H, W), got {arr.shape}.")
    if arr.size:
        arr = _as_label_array(arr)  # the package's one check of integer, non-negative ids
    return arr.astype(np.int64 if arr.size and arr.max() >= 2**31 else np.int32)


class RemoveSmallInstances(Transform):
    """Remove the instances of fewer than ``min_size`` pixels (voxels) from each channel of an instance label map.

    Args:
        min_size: the smallest instance kept, in pixels, an int >= 0.

    Examples::

        >>> import torch
        >>> labels = torch.tensor([[[1, 1, 1, 0], [0, 0, 0, 2]]])
        >>> RemoveSmallInstances(2)(labels).tolist()
        [[[1, 1, 1, 0], [0, 0, 0, 0]]]
    """

    backend = [TransformBackends.NUMPY]

    def __init__(self, min_size: int) -> None:
        self.min_size = _check_size(min_size, "min_size")

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:  # type: ignore[override]
        arr = _channels(img, type(self).__name__)
        out = np.stack([remove_small_instances(c, self.min_size) for c in arr])
        return convert_to_dst_type(out, img, dtype=out.dtype)[0]


class FillInstanceHoles(Transform):
    """Fill the holes of every instance in each channel of an instance label map (2D or 3D).

    See :py:func:`fill_instance_holes`: a hole inside one instance takes its id; a hole between instances is
    shared out by nearest instance pixel.

    Examples::

        >>> import torch
        >>> ring = torch.tensor([[[2, 2, 2], [2, 0, 2], [2, 2, 2]]])
        >>> FillInstanceHoles()(ring).tolist()
        [[[2, 2, 2], [2, 2, 2], [2, 2, 2]]]
    """

    backend = [TransformBackends.NUMPY]

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:  # type: ignore[override]
        arr = _channels(img, type(self).__name__)
        out = np.stack([fill_instance_holes(np.ascontiguousarray(c)) for c in arr])
        return convert_to_dst_type(out, img, dtype=out.dtype)[0]


class RemoveSmallInstancesd(MapTransform):
    """Dictionary-based :py:class:`RemoveSmallInstances`.

    Examples::

        >>> import numpy as np
        >>> RemoveSmallInstancesd("inst", min_size=2)({"inst": np.array([[[1, 1, 0, 2]]])})["inst"].tolist()
        [[[1, 1, 0, 0]]]
    """

    backend = RemoveSmallInstances.backend

    def __init__(self, keys: KeysCollection, min_size: int, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = RemoveSmallInstances(min_size)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class FillInstanceHolesd(MapTransform):
    """Dictionary-based :py:class:`FillInstanceHoles`.

    Examples::

        >>> import numpy as np
        >>> ring = np.array([[[3, 3, 3], [3, 0, 3], [3, 3, 3]]])
        >>> int(FillInstanceHolesd("inst")({"inst": ring})["inst"][0, 1, 1])
        3
    """

    backend = FillInstanceHoles.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = FillInstanceHoles()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


RemoveSmallInstancesD = RemoveSmallInstancesDict = RemoveSmallInstancesd
FillInstanceHolesD = FillInstanceHolesDict = FillInstanceHolesd

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

"""Dictionary transform: instance ids of channel-first masks or label images."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms.transform import MapTransform

from .array import LabelInstances

__all__ = ["LabelInstancesd", "LabelInstancesD", "LabelInstancesDict"]


class LabelInstancesd(MapTransform):
    """Dictionary-based :py:class:`~monai_unet2015.transforms.instances.array.LabelInstances`.

    Replaces each key's channel-first mask (or instance label image) by its int32 instance ids, with the
    input's type, shape and metadata, e.g. ``LabelInstancesd(keys="pred", connectivity=1)`` after
    ``AsDiscreted(keys="pred", argmax=True)`` for the SEG measure of predicted cells.

    Args:
        keys: keys of the images to label.
        label_type: ``"binary"`` (default: connected components of the non-zero pixels), ``"instance"`` or
            ``"auto"``.
        connectivity: 1 (faces only) up to the number of spatial dimensions, or ``None`` (default, full).
        allow_missing_keys: don't raise an exception if a key is missing.

    Examples::

        >>> import numpy as np
        >>> out = LabelInstancesd(keys="pred", connectivity=1)({"pred": np.array([[[1, 0, 1], [0, 1, 0]]])})
        >>> out["pred"].tolist(), out["pred"].dtype
        ([[[1, 0, 2], [0, 3, 0]]], dtype('int32'))
    """

    backend = LabelInstances.backend

    def __init__(
        self,
        keys: KeysCollection,
        label_type: str = "binary",
        connectivity: int | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.labeller = LabelInstances(label_type=label_type, connectivity=connectivity)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.labeller(d[key])
        return d


LabelInstancesD = LabelInstancesDict = LabelInstancesd

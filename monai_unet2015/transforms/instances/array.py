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

"""Array transform: instance ids of a channel-first mask or label image."""

from __future__ import annotations

import numpy as np
import torch

from monai.config import NdarrayOrTensor
from monai.transforms.transform import Transform
from monai.utils import TransformBackends, convert_data_type, convert_to_dst_type

from .connectivity import check_connectivity
from .functional import _as_label_array, _label_instances, _look_up_label_type

__all__ = ["LabelInstances"]


class LabelInstances(Transform):
    """Instance ids ``1..N`` (0 = background) of each channel of a channel-first image, 2D or 3D.

    ``label_type="binary"`` (default): every non-zero pixel is foreground and the instances are its connected
    components (``scipy.ndimage.label``; ``connectivity`` 1 = faces only, i.e. 4-neighbourhood in 2D and 6 in
    3D, as ``skimage.measure.label(connectivity=1)``; ``None`` = full, 8 / 26). This turns a predicted cell mask
    into the instance map that the SEG measure compares with the ground-truth instances. ``"instance"``
    renumbers the distinct positive ids of an instance label map to ``1..N`` in increasing order; ``"auto"``
    picks ``"binary"`` for an image with a single non-zero value. See
    :py:func:`~monai_unet2015.transforms.instances.label_instances`, which this applies to every channel
    independently (ids restart at 1 in each channel).

    The input is ``(C, H, W)`` or ``(C, D, H, W)`` with non-negative integer values (bool and integral floats
    accepted), as a NumPy array, tensor or MetaTensor; the output has the input's type, shape and device, int32
    ids, and a MetaTensor keeps its metadata. The computation runs on the CPU (SciPy).

    Args:
        label_type: ``"binary"`` (default), ``"instance"`` or ``"auto"``.
        connectivity: neighbourhood of the connected components: 1 (faces only) up to the number of spatial
            dimensions, or ``None`` (default) for the full neighbourhood.

    Raises:
        ValueError: bad arguments; an image with fewer than two axes, an empty image, negative or non-integer
            values.

    Examples::

        >>> import torch
        >>> mask = torch.tensor([[[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]])  # (1, H, W)
        >>> LabelInstances(connectivity=1)(mask)
        tensor([[[1, 1, 0, 0],
                 [0, 0, 2, 0],
                 [0, 0, 0, 3]]], dtype=torch.int32)
        >>> int(LabelInstances()(mask).max())  # full neighbourhood: the diagonal pixels join
        1
    """

    backend = [TransformBackends.NUMPY]

    def __init__(self, label_type: str = "binary", connectivity: int | None = None) -> None:
        self.label_type = _look_up_label_type(label_type)
        self.connectivity = check_connectivity(connectivity)  # the range once the spatial dims are known

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first image ``(C, *spatial)``: binary masks or instance ids (0 = background).

        Returns:
            int32 instance ids of the shape and type of ``img``.
        """
        if img.ndim < 2:
            raise ValueError(
                f"LabelInstances expects a channel-first image (C, H, W) or (C, D, H, W), got shape {tuple(img.shape)}."
            )
        connectivity = check_connectivity(self.connectivity, img.ndim - 1)
        img_np = convert_data_type(img, np.ndarray)[0]
        out = np.empty(img_np.shape, np.int32)
        for c in range(img_np.shape[0]):
            out[c] = _label_instances(_as_label_array(img_np[c]), self.label_type, connectivity)[0]
        dtype = torch.int32 if isinstance(img, torch.Tensor) else np.int32
        return convert_to_dst_type(out, dst=img, dtype=dtype)[0]

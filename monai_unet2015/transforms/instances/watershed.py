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

"""Touching cells split by a marker-controlled watershed on the network's own probability map.

The border-weighted loss (Ronneberger et al. 2015, Eq. 2) trains the network to predict the thin gaps between
touching cells as background, so the cell probability is low along those gaps. Markers are the cores of the
cells, the connected components of ``probability >= marker_threshold`` (stricter than the mask threshold) of
at least ``min_marker_size`` pixels; the watershed of ``-probability`` (``skimage.segmentation.watershed``)
grows them inside the mask ``probability >= mask_threshold``, so that two cells touching through a faint gap
become two instances. Objects below ``min_size`` pixels are then removed and holes of each instance filled
(``scipy.ndimage``), and the ids renumbered ``1..N``.

The same step gives neurons from an EM membrane probability (``polarity="membrane"``: cells are
``1 - probability``): with ``mask_threshold=0`` every pixel joins the basin of a marker, so the membranes
become the borders between neighbouring neurons and no pixel is left unassigned; markers below
``min_marker_size`` are dropped, so that no tiny fragments arise.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_data_type, convert_to_dst_type, look_up_option

from .cleanup import _check_size, fill_instance_holes, remove_small_instances

__all__ = ["POLARITIES", "watershed_instances", "WatershedInstances", "WatershedInstancesd", "WatershedInstancesD",
           "WatershedInstancesDict"]


POLARITIES = ("cell", "membrane")
"""What the probability map is of: the cells, or the borders between them."""


def _check(name: str, value: float, lo: float, hi: float) -> float:
    value = float(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}.")
    return value


def watershed_instances(
    prob: np.ndarray,
    mask_threshold: float = 0.5,
    marker_threshold: float = 0.8,
    min_marker_size: int = 10,
    min_size: int = 50,
    fill_holes: bool = True,
    connectivity: int = 1,
    polarity: str = "cell",
) -> np.ndarray:
    """Instance ids (0 = background) of a 2D or 3D cell probability map ``prob``; see the module docstring.

    Args:
        prob: cell probability, ``(H, W)`` or ``(D, H, W)``, values in [0, 1].
        mask_threshold: cells are ``prob >= mask_threshold``.
        marker_threshold: cell cores (the markers) are ``prob >= marker_threshold``, at least the mask threshold.
        min_marker_size: smaller cores are no markers (their pixels join a neighbouring cell or are dropped).
        min_size: instances below this many pixels are removed (specks).
        fill_holes: fill the holes of each instance.
        connectivity: neighbourhood of the markers and of the watershed, 1 (faces) .. ndim.
        polarity: ``"cell"`` (default): ``prob`` is the cell probability; ``"membrane"``: ``prob`` is the
            probability of the borders between cells (EM membranes), and the thresholds apply to ``1 - prob``.

    Examples::

        >>> import numpy as np
        >>> yy, xx = np.mgrid[:20, :40]
        >>> prob = np.maximum(1 - np.hypot(yy - 10, xx - 11) / 10, 1 - np.hypot(yy - 10, xx - 28) / 10)  # two touching discs
        >>> int(watershed_instances(prob, 0.05, 0.5, min_size=5).max()), int((prob >= 0.05).any())
        (2, 1)
        >>> membrane = np.zeros((6, 9)); membrane[:, 4] = 1  # two cells either side of a membrane column
        >>> neurons = watershed_instances(membrane, 0.0, 0.8, min_marker_size=1, min_size=0, polarity="membrane")
        >>> int(neurons.max()), int((neurons == 0).sum())  # every pixel belongs to one of the two
        (2, 0)
    """
    from scipy import ndimage as ndi
    from skimage.segmentation import relabel_sequential, watershed

    prob = np.asarray(prob, dtype=np.float32)
    if look_up_option(polarity, POLARITIES) == "membrane":
        prob = 1.0 - prob
    if prob.ndim not in (2, 3):
        raise ValueError(f"prob must be (H, W) or (D, H, W), got shape {prob.shape}.")
    mask = prob >= mask_threshold
    structure = ndi.generate_binary_structure(prob.ndim, connectivity)
    markers, _ = ndi.label(prob >= marker_threshold, structure=structure)
    markers = remove_small_instances(markers, min_marker_size)
    labels = remove_small_instances(watershed(-prob, markers=markers, mask=mask, connectivity=connectivity), min_size)
    if fill_holes and labels.any():
        labels = fill_instance_holes(np.ascontiguousarray(labels))
    return relabel_sequential(labels.astype(np.int32))[0]


class WatershedInstances(Transform):
    """Instance ids of a channel-first cell probability map ``(1, H, W)`` / ``(1, D, H, W)``: see
    :py:func:`watershed_instances`. NumPy, tensor or MetaTensor in; int32 ids of the same type, shape and meta out.

    Args:
        mask_threshold: cells are ``prob >= mask_threshold`` (the bundle's mask threshold).
        marker_threshold: the stricter threshold of the cell cores.
        min_marker_size: smallest core in pixels.
        min_size: smallest instance in pixels.
        fill_holes: fill the holes of each instance.
        connectivity: 1 (faces) .. number of spatial dimensions.
        polarity: ``"cell"`` (default, a cell probability) or ``"membrane"`` (a probability of the borders
            between cells, e.g. EM membranes; the thresholds apply to ``1 - probability``).

    Examples::

        >>> import torch
        >>> prob = torch.zeros(1, 8, 12)
        >>> prob[0, 1:7, 1:5] = 0.9; prob[0, 1:7, 6:11] = 0.9; prob[0, 3:5, 5] = 0.6  # a faint bridge
        >>> WatershedInstances(0.5, 0.8, min_size=3)(prob).max().item()
        2
    """

    backend = [TransformBackends.NUMPY]

    def __init__(
        self,
        mask_threshold: float = 0.5,
        marker_threshold: float = 0.8,
        min_marker_size: int = 10,
        min_size: int = 50,
        fill_holes: bool = True,
        connectivity: int = 1,
        polarity: str = "cell",
    ) -> None:
        self.polarity = look_up_option(polarity, POLARITIES)
        self.mask_threshold = _check("mask_threshold", mask_threshold, 0.0, 1.0)
        self.marker_threshold = _check("marker_threshold", marker_threshold, self.mask_threshold, 1.0)
        self.min_marker_size = _check_size(min_marker_size, "min_marker_size")
        self.min_size = _check_size(min_size, "min_size")
        self.fill_holes = bool(fill_holes)
        if connectivity not in (1, 2, 3):
            raise ValueError(f"connectivity must be 1, 2 or 3 (at most the number of spatial axes), got {connectivity!r}.")
        self.connectivity = int(connectivity)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:  # type: ignore[override]
        arr = convert_data_type(img, np.ndarray)[0]
        if arr.ndim not in (3, 4) or arr.shape[0] != 1:
            raise ValueError(f"WatershedInstances expects a (1, H, W) or (1, D, H, W) probability, got {arr.shape}.")
        if self.connectivity > arr.ndim - 1:
            raise ValueError(f"connectivity {self.connectivity} exceeds the {arr.ndim - 1} spatial axes.")
        out = watershed_instances(arr[0], self.mask_threshold, self.marker_threshold, self.min_marker_size,
                                  self.min_size, self.fill_holes, self.connectivity, self.polarity)[None]
        return convert_to_dst_type(out, img, dtype=np.int32)[0]

    def __repr__(self) -> str:
        """The transform and its parameters, the same in every process (out-of-core jobs compare it on resuming).

        Examples::

            >>> repr(WatershedInstances(0.5, 0.9, min_size=3))[:79]
            'WatershedInstances(mask_threshold=0.5, marker_threshold=0.9, min_marker_size=10'
            >>> repr(WatershedInstances(min_size=3)) == repr(WatershedInstances(min_size=3))
            True
        """
        names = ("mask_threshold", "marker_threshold", "min_marker_size", "min_size", "fill_holes", "connectivity",
                 "polarity")
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in names)})"


class WatershedInstancesd(MapTransform):
    """Dictionary-based :py:class:`WatershedInstances`: instances of ``data[key]`` written to ``data[output_key]``.

    Args:
        keys: keys of the probability maps.
        output_keys: where to write the instance maps (default: overwrite the key); one per key.
        allow_missing_keys: don't raise for missing keys.
        kwargs: the arguments of :py:class:`WatershedInstances`.

    Examples::

        >>> import torch
        >>> prob = torch.zeros(1, 6, 6); prob[0, 1:5, 1:5] = 0.95
        >>> d = WatershedInstancesd("prob", output_keys="instances", min_size=2)({"prob": prob})
        >>> int(d["instances"].max()), d["prob"].dtype
        (1, torch.float32)
    """

    backend = WatershedInstances.backend

    def __init__(
        self, keys: KeysCollection, output_keys: KeysCollection | None = None, allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        from monai.utils import ensure_tuple

        self.output_keys = self.keys if output_keys is None else ensure_tuple(output_keys)
        if len(self.output_keys) != len(self.keys):
            raise ValueError(f"output_keys needs one key per key ({len(self.keys)}), got {self.output_keys}.")
        self.transform = WatershedInstances(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, out in self.key_iterator(d, self.output_keys):
            d[out] = self.transform(d[key])
        return d


WatershedInstancesD = WatershedInstancesDict = WatershedInstancesd

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

"""Dictionary transform for the U-Net weight map: adds the weight map and the carved binary target."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms.transform import MapTransform
from monai.utils import ensure_tuple_rep

from .array import UNetWeightMap

__all__ = ["UNetWeightMapd", "UNetWeightMapD", "UNetWeightMapDict"]


class UNetWeightMapd(MapTransform):
    """Dictionary-based wrapper of :py:class:`~monai_unet2015.transforms.weight_map.array.UNetWeightMap`.

    For every key in ``keys`` (a label image ``(1, H, W)`` or ``(1, D, H, W)``: instance ids or a binary mask),
    writes the float32 weight map to ``weight_key`` and the binary target with separation borders to
    ``target_key`` (``None``: replace the label itself). Both have the label's type and device and carry its
    metadata (a MetaTensor label gives MetaTensors); the computation runs in NumPy
    (``backend = [TransformBackends.NUMPY]``, as the array transform).

    Args:
        keys: keys of the label images.
        weight_key: output key(s) of the weight maps, one per key in ``keys`` (default ``"weight"``).
        target_key: output key(s) of the carved binary targets; ``None`` (default) overwrites the label, a
            different key keeps the instance labels (e.g. to deform them before computing the map again).
        w0, sigma, class_weights, spacing, carve, connectivity, label_type, tol: see
            :py:class:`~monai_unet2015.transforms.weight_map.array.UNetWeightMap`.
        allow_missing_keys: don't raise an exception if a key is missing.

    Examples::

        >>> import numpy as np
        >>> from monai_unet2015.transforms import UNetWeightMapd
        >>> label = np.zeros((1, 8, 8), np.int32)
        >>> label[0, 2:6, 1:4], label[0, 2:6, 4:7] = 1, 2
        >>> out = UNetWeightMapd(keys="label", class_weights=None)({"label": label})
        >>> sorted(out)
        ['label', 'weight']
        >>> out["label"][0, 3].tolist()
        [0, 1, 1, 0, 0, 1, 1, 0]

    In a bundle config::

        {"_target_": "monai_unet2015.transforms.UNetWeightMapd", "keys": "label", "weight_key": "weight",
         "w0": 10.0, "sigma": 5.0}
    """

    backend = UNetWeightMap.backend

    def __init__(
        self,
        keys: KeysCollection,
        weight_key: str | Sequence[str] = "weight",
        target_key: str | Sequence[str | None] | None = None,
        w0: float = 10.0,
        sigma: float = 5.0,
        class_weights: str | Sequence[float] | None = "balanced",
        spacing: Sequence[float] | float | str | None = None,
        carve: bool = True,
        connectivity: int | None = None,
        label_type: str = "auto",
        tol: float = 1e-4,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.weight_keys = ensure_tuple_rep(weight_key, len(self.keys))
        self.target_keys = ensure_tuple_rep(target_key, len(self.keys))
        for key, wkey, tkey in zip(self.keys, self.weight_keys, self.target_keys):
            out_target = key if tkey is None else tkey
            if wkey == key or wkey == out_target:
                raise ValueError(
                    f"weight_key {wkey!r} must differ from the label key {key!r} and the target key {out_target!r}."
                )
        self.weight_map = UNetWeightMap(
            w0=w0,
            sigma=sigma,
            class_weights=class_weights,
            spacing=spacing,
            carve=carve,
            connectivity=connectivity,
            label_type=label_type,
            tol=tol,
            return_target=True,
        )

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key, wkey, tkey in self.key_iterator(d, self.weight_keys, self.target_keys):
            weight, target = self.weight_map(d[key])
            d[wkey] = weight
            d[key if tkey is None else tkey] = target
        return d


UNetWeightMapD = UNetWeightMapDict = UNetWeightMapd

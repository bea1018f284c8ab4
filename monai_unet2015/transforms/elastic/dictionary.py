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

"""Dictionary transforms for the U-Net paper's elastic deformation: one field shared by all keys of a call."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from monai.config import KeysCollection, NdarrayOrTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms.inverse import InvertibleTransform
from monai.transforms.transform import MapTransform, RandomizableTransform
from monai.utils import GridSampleMode, GridSamplePadMode, TraceKeys, ensure_tuple_rep
from monai.utils.type_conversion import convert_to_dst_type, convert_to_tensor

from .array import GridElastic, RandGridElastic, _check_image, as_coarse_displacement
from .functional import grid_elastic, grid_elastic_inverse, look_up_elastic_mode, look_up_elastic_padding_mode

__all__ = [
    "GridElasticd",
    "GridElasticD",
    "GridElasticDict",
    "RandGridElasticd",
    "RandGridElasticD",
    "RandGridElasticDict",
]


class _ElasticMapMixin:
    """Deform all keys with one field (one ``grid_sample`` per mode/dtype group) and record one trace per key."""

    keys: tuple
    mode: tuple
    padding_mode: tuple
    device: torch.device | str | None

    def _set_modes(self, mode: Any, padding_mode: Any, device: torch.device | str | None) -> None:
        """One mode and padding mode per key (checked now, as the array transforms do) and the compute device."""
        self.mode = ensure_tuple_rep(mode, len(self.keys))
        self.padding_mode = ensure_tuple_rep(padding_mode, len(self.keys))
        for m, p in zip(self.mode, self.padding_mode):
            look_up_elastic_mode(m)
            look_up_elastic_padding_mode(p)
        self.device = device

    def _deform(self, d: dict, displacement: torch.Tensor | None, do_transform: bool) -> dict:
        items = list(self.key_iterator(d, self.mode, self.padding_mode))  # type: ignore[attr-defined]
        if not items:
            return d
        tensors = []
        for key, _, _ in items:
            _check_image(d[key])
            t = convert_to_tensor(d[key], track_meta=get_track_meta())
            tensors.append(t.to(self.device) if self.device is not None else t)
        spatial = tuple(tensors[0].shape[1:])
        nd = len(spatial)
        for (key, _, _), t in zip(items, tensors):
            if tuple(t.shape[1:]) != spatial:
                raise ValueError(
                    f"all keys must share one spatial shape (one deformation field), got {tuple(t.shape)} for key "
                    f"{key!r} and {spatial} for key {items[0][0]!r}."
                )
        modes = [look_up_elastic_mode(m, nd) for _, m, _ in items]
        pads = [look_up_elastic_padding_mode(p) for _, _, p in items]
        if do_transform:
            disp = as_coarse_displacement(displacement, nd)  # type: ignore[arg-type]
            outs = grid_elastic([convert_to_tensor(t, track_meta=False) for t in tensors], disp, modes, pads)
            outs = [convert_to_dst_type(o, dst=t, dtype=o.dtype, device=o.device)[0] for o, t in zip(outs, tensors)]
            record = disp.detach().cpu()
        else:
            outs, record = tensors, None
        for (key, _, _), out, m, p in zip(items, outs, modes, pads):
            self.push_transform(  # type: ignore[attr-defined]
                out,
                orig_size=spatial,
                extra_info={"displacement": record, "mode": m, "padding_mode": p},
            )
            d[key] = out
        return d

    def _undo(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):  # type: ignore[attr-defined]
            transform = self.pop_transform(d[key])  # type: ignore[attr-defined]
            if not transform[TraceKeys.DO_TRANSFORM]:
                continue
            extra = transform[TraceKeys.EXTRA_INFO]
            plain = convert_to_tensor(d[key], track_meta=False)
            out = grid_elastic_inverse(plain, extra["displacement"], extra["mode"], extra["padding_mode"])
            d[key] = convert_to_dst_type(out, dst=d[key], dtype=out.dtype, device=out.device)[0]
        return d


class GridElasticd(_ElasticMapMixin, MapTransform, InvertibleTransform):
    """Dictionary-based :py:class:`monai_unet2015.transforms.GridElastic`: one given coarse grid for all keys.

    The dense field is computed once per call and shared by every key; keys with the same mode, padding mode
    and compute dtype are resampled by a single ``grid_sample`` call.

    Args:
        keys: keys of the channel-first images to deform (all with the same spatial shape).
        displacement: coarse grid ``(spatial_dims, G_0, ..., G_{d-1})`` in pixels.
        mode: interpolation mode, or one per key: ``"bilinear"``/``1``, ``"nearest"``/``0``, ``"bicubic"``
            (2D only) or ``3`` (cubic B-spline).
        padding_mode: ``"reflection"`` (default), ``"border"`` or ``"zeros"``, or one per key.
        device: device to compute on; default: the data's device.
        allow_missing_keys: don't raise an exception if a key is missing.

    Examples::

        >>> import torch
        >>> disp = torch.zeros(2, 3, 3)
        >>> disp[0, 1, 1] = 6.0
        >>> t = GridElasticd(["image", "label"], disp, mode=("bilinear", "nearest"))
        >>> out = t({"image": torch.rand(1, 32, 32), "label": torch.randint(0, 3, (1, 32, 32))})
        >>> sorted(out["label"].unique().tolist()) == [0, 1, 2]
        True
    """

    backend = GridElastic.backend

    def __init__(
        self,
        keys: KeysCollection,
        displacement: NdarrayOrTensor,
        mode: str | int | Sequence[str | int] = GridSampleMode.BILINEAR,
        padding_mode: str | Sequence[str] = GridSamplePadMode.REFLECTION,
        device: torch.device | str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.displacement = as_coarse_displacement(displacement, len(displacement))
        self._set_modes(mode, padding_mode, device)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        return self._deform(dict(data), self.displacement, True)

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        return self._undo(data)


class RandGridElasticd(_ElasticMapMixin, RandomizableTransform, MapTransform, InvertibleTransform):
    """Dictionary-based :py:class:`monai_unet2015.transforms.RandGridElastic`: one draw shared by all keys.

    The paper's elastic deformation (coarse 3 x 3 grid corner to corner, node displacements ~ N(0, 10 px),
    bicubic B-spline interpolation) applied with one dense field to every key: typically the image with a
    linear or cubic mode, labels with ``"nearest"`` (no new label values, dtype kept) and weight maps with
    ``"bilinear"``. The field is computed once per call; keys with the same mode, padding mode and compute
    dtype are resampled by a single ``grid_sample`` call. ``get_parameters()`` returns the last draw for
    :py:class:`GridElastic` / :py:class:`GridElasticd` (e.g. to deform a weight map computed later).

    Args:
        keys: keys of the channel-first images to deform (all with the same spatial shape).
        sigma: standard deviation of the node displacements (pixels, or physical units with ``spacing``),
            one value or one per axis. Default 10.
        grid_size: grid nodes per axis (>= 2), one value or one per axis. Default 3.
        spacing: pixel size per axis in the unit of ``sigma``; None: ``sigma`` in pixels.
        prob: probability of deforming (one decision for all keys).
        mode: interpolation mode, or one per key: ``"bilinear"``/``1``, ``"nearest"``/``0``, ``"bicubic"``
            (2D only) or ``3`` (cubic B-spline, 2D and 3D).
        padding_mode: ``"reflection"`` (default), ``"border"`` or ``"zeros"``, or one per key.
        device: device to compute on; default: the data's device.
        allow_missing_keys: don't raise an exception if a key is missing.

    Examples::

        >>> import torch
        >>> t = RandGridElasticd(["image", "label", "weight"], prob=1.0, mode=("bicubic", "nearest", "bilinear"))
        >>> _ = t.set_random_state(seed=0)
        >>> data = {"image": torch.rand(1, 64, 64), "label": torch.randint(0, 2, (1, 64, 64)),
        ...         "weight": torch.rand(1, 64, 64)}
        >>> out = t(data)
        >>> out["label"].dtype, set(out["label"].unique().tolist()) <= {0, 1}
        (torch.int64, True)
    """

    backend = RandGridElastic.backend

    def __init__(
        self,
        keys: KeysCollection,
        sigma: float | Sequence[float] = 10.0,
        grid_size: int | Sequence[int] = 3,
        spacing: float | Sequence[float] | None = None,
        prob: float = 0.1,
        mode: str | int | Sequence[str | int] = GridSampleMode.BILINEAR,
        padding_mode: str | Sequence[str] = GridSamplePadMode.REFLECTION,
        device: torch.device | str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.rand_elastic = RandGridElastic(sigma=sigma, grid_size=grid_size, spacing=spacing, prob=1.0)
        self._set_modes(mode, padding_mode, device)

    def set_random_state(
        self, seed: int | None = None, state: np.random.RandomState | None = None
    ) -> RandGridElasticd:
        super().set_random_state(seed, state)
        self.rand_elastic.set_random_state(seed, state)
        return self

    def randomize(self, spatial_shape: Sequence[int]) -> None:
        """One decision (``prob``) and, when deforming, one coarse grid for all keys."""
        super().randomize(None)
        if self._do_transform:
            self.rand_elastic.randomize(spatial_shape)
        else:  # no draw (as MONAI's random transforms); the recorded parameters are the identity
            self.rand_elastic.displacement = self.rand_elastic.zero_displacement(len(spatial_shape))

    def get_parameters(self) -> dict[str, Any]:
        """The last draw: ``{"displacement": coarse grid}`` (zeros when the last call did not deform)."""
        if self.rand_elastic.displacement is None:
            raise RuntimeError("no draw yet: call the transform or randomize(spatial_shape) first.")
        return {"displacement": self.rand_elastic.displacement.clone()}

    def __call__(
        self, data: Mapping[Hashable, NdarrayOrTensor], randomize: bool = True
    ) -> dict[Hashable, NdarrayOrTensor]:
        """
        Args:
            data: dictionary of channel-first images; the keys in ``self.keys`` share one deformation.
            randomize: draw a new grid first (default); False re-applies the last draw.
        """
        d = dict(data)
        first_key = self.first_key(d)
        if first_key == ():
            out: dict[Hashable, NdarrayOrTensor] = convert_to_tensor(d, track_meta=get_track_meta())
            return out
        if randomize:
            _check_image(d[first_key])
            self.randomize(d[first_key].shape[1:])
        elif self.rand_elastic.displacement is None:
            raise RuntimeError("randomize=False but there is no previous draw: call randomize(spatial_shape) first.")
        return self._deform(d, self.rand_elastic.displacement, self._do_transform)

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        """Approximately undo the recorded deformation of every key (fixed-point inversion of the field)."""
        return self._undo(data)


GridElasticD = GridElasticDict = GridElasticd
RandGridElasticD = RandGridElasticDict = RandGridElasticd

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

"""Colour overlay of a label map on a grey image, for people to look at segmentation results."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch

from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data.meta_obj import get_track_meta
from monai.data.meta_tensor import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor, ensure_tuple_rep

__all__ = ["LabelOverlay", "LabelOverlayd", "LabelOverlayD", "LabelOverlayDict", "label_colors"]


def label_colors(num_labels: int, device: torch.device | str | None = None) -> torch.Tensor:
    """RGB colours in [0, 255] for labels ``0..num_labels`` (row 0, the background, is unused).

    Label 1 is red; higher labels walk around the hue circle by the golden angle, so neighbouring ids get
    clearly different colours and every id keeps its colour whatever the number of labels.

    Examples::

        >>> label_colors(2)[1:].tolist()
        [[255.0, 0.0, 0.0], [0.0, 255.0, 74.0]]
    """
    k = torch.arange(num_labels + 1, dtype=torch.float64, device=device)
    hue = ((k - 1) * 0.381966011250105 + 0.0) % 1.0 * 6.0  # golden angle, in sextants
    # HSV -> RGB with s = v = 1 (vectorised)
    rgb = torch.stack([(hue + n) % 6.0 for n in (5.0, 3.0, 1.0)], dim=-1)
    rgb = 1.0 - torch.clamp(torch.minimum(rgb, 4.0 - rgb), 0.0, 1.0)
    return torch.round(rgb * 255.0).to(torch.float32)


class LabelOverlay(Transform):
    """
    Blend a label map onto a grey image as an RGB image, e.g. to look at a predicted mask with a PNG viewer.

    The image is scaled to [0, 255] by its own minimum and maximum; every pixel with label ``k > 0`` is
    blended with colour ``colors[k]`` (default :py:func:`label_colors`: label 1 red, instance ids in
    well-separated hues): ``out = (1 - alpha) * grey + alpha * colour``; label 0 keeps the grey value.
    The output is channel-first ``(3, *spatial)`` float32 with integral values in [0, 255] and the image's
    metadata; write it with ``SaveImaged(..., output_ext=".png", output_dtype=np.uint8)``.

    Args:
        alpha: opacity of the colour, in [0, 1].
        colors: optional ``(K + 1, 3)`` RGB table in [0, 255] indexed by label (row 0 unused); labels beyond
            it cycle through rows ``1..K``.

    Examples::

        >>> import torch
        >>> image = torch.linspace(0, 1, 16).reshape(1, 4, 4)
        >>> label = torch.zeros(1, 4, 4); label[0, :2, :2] = 1
        >>> out = LabelOverlay(alpha=0.5)(image, label)
        >>> out.shape, out[:, 0, 0].tolist(), out[:, 3, 3].tolist()
        (torch.Size([3, 4, 4]), [128.0, 0.0, 0.0], [255.0, 255.0, 255.0])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, alpha: float = 0.4, colors: Sequence[Sequence[float]] | NdarrayOrTensor | None = None) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}.")
        self.alpha = float(alpha)
        if colors is not None:
            table = torch.as_tensor(np.asarray(colors, dtype=np.float32))
            if table.ndim != 2 or table.shape[1] != 3 or table.shape[0] < 2:
                raise ValueError(f"colors must be a (K + 1, 3) RGB table with K >= 1, got shape {tuple(table.shape)}.")
            colors = table
        self.colors = colors

    def __call__(self, img: NdarrayOrTensor, label: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: grey image ``(1, *spatial)`` (channel-first, one channel).
            label: label map ``(1, *spatial)``, non-negative integer values (floats holding integers accepted).
        """
        image_t = convert_to_tensor(img, track_meta=False, dtype=torch.float32)
        label_t = convert_to_tensor(label, track_meta=False).to(image_t.device)
        if image_t.ndim < 2 or image_t.shape[0] != 1:
            raise ValueError(
                f"img must be channel-first with one channel, (1, *spatial), got shape {tuple(image_t.shape)}."
            )
        if tuple(label_t.shape) != tuple(image_t.shape):
            raise ValueError(
                f"label must have the image's shape {tuple(image_t.shape)}, got {tuple(label_t.shape)}."
            )
        if label_t.is_floating_point():
            if not torch.isfinite(label_t).all() or (label_t != torch.round(label_t)).any():
                raise ValueError("label must hold integer values (a label map), got non-integral or non-finite values.")
        ids = label_t.to(torch.int64)
        if (ids < 0).any():
            raise ValueError(f"label must be non-negative, got a minimum of {int(ids.min())}.")
        lo, hi = image_t.min(), image_t.max()
        grey = (image_t - lo) / (hi - lo) * 255.0 if hi > lo else torch.zeros_like(image_t)
        num = int(ids.max()) if ids.numel() else 0
        if self.colors is None:
            table = label_colors(max(num, 1), device=image_t.device)
        else:
            table = self.colors.to(image_t.device)
            k = table.shape[0] - 1
            ids = torch.where(ids > 0, (ids - 1) % k + 1, ids)
        colour = table[ids[0]].movedim(-1, 0)  # (3, *spatial)
        out = grey.expand(3, *grey.shape[1:]).clone()
        fg = (ids[0] > 0).unsqueeze(0).expand_as(out)
        out[fg] = ((1.0 - self.alpha) * out + self.alpha * colour)[fg]
        out = torch.round(out).clamp_(0.0, 255.0)
        if isinstance(img, MetaTensor) and get_track_meta():
            return MetaTensor(out, meta=img.meta)
        return convert_to_dst_type(out, img, dtype=torch.float32)[0]


class LabelOverlayd(MapTransform):
    """
    Dictionary-based :py:class:`LabelOverlay`: for every label key, blend it on ``data[image_key]`` and store
    the RGB overlay under the matching ``overlay_keys`` entry (default ``"{key}_overlay"``).

    Args:
        keys: label keys.
        image_key: key of the grey image.
        overlay_keys: output keys, one per label key; default ``"{key}_overlay"``.
        alpha: opacity of the colour, in [0, 1].
        colors: optional RGB table, see :py:class:`LabelOverlay`.
        allow_missing_keys: don't raise for missing label keys.

    Examples::

        >>> import torch
        >>> d = {"image": torch.rand(1, 8, 8), "mask": torch.ones(1, 8, 8)}
        >>> LabelOverlayd("mask", overlay_keys="overlay")(d)["overlay"].shape
        torch.Size([3, 8, 8])
    """

    backend = LabelOverlay.backend

    def __init__(
        self,
        keys: KeysCollection,
        image_key: str = "image",
        overlay_keys: KeysCollection | None = None,
        alpha: float = 0.4,
        colors: Sequence[Sequence[float]] | NdarrayOrTensor | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        if overlay_keys is None:
            self.overlay_keys = tuple(f"{k}_overlay" for k in self.keys)
        else:
            self.overlay_keys = ensure_tuple_rep(overlay_keys, len(self.keys))
        self.overlay = LabelOverlay(alpha=alpha, colors=colors)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        if self.image_key not in d:
            raise KeyError(f"image_key {self.image_key!r} not in the data; keys: {list(d)}.")
        for key, out_key in self.key_iterator(d, self.overlay_keys):
            d[out_key] = self.overlay(d[self.image_key], d[key])
        return d


LabelOverlayD = LabelOverlayDict = LabelOverlayd

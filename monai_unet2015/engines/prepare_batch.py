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

"""A ``prepare_batch`` that hands the U-Net weight map to the loss inside MONAI's ``SupervisedTrainer``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from monai.engines.utils import PrepareBatch
from monai.utils import CommonKeys

from monai_unet2015.losses.weighted_ce import pack_weight_map

__all__ = ["PrepareBatchWeightMap"]


class PrepareBatchWeightMap(PrepareBatch):
    """Prepare ``(image, target)`` with the weight map packed into the target as its last channel.

    MONAI's ``SupervisedTrainer`` calls ``loss_function(pred, target)`` with the second item returned by
    ``prepare_batch``; extra items (``PrepareBatchExtraInput``) go to the network, not the loss. This adapter
    therefore returns ``target = cat([label, weight], dim=1)`` (float32, see
    :py:func:`~monai_unet2015.losses.weighted_ce.pack_weight_map`), which
    ``WeightedCrossEntropyLoss(weight_map_in_target=True)`` splits again. The network's input is unchanged.

    Note that ``engine.state.output["label"]`` then holds the packed target too: train-time metrics or
    postprocessing that read the label should drop the last channel first, e.g. with
    ``{"_target_": "Lambdad", "keys": "label", "func": "$lambda x: x[:-1]"}`` in the trainer's postprocessing
    (after decollation every item is ``(C + 1, *spatial)``). Validation (``SupervisedEvaluator``) keeps the
    default ``prepare_batch``.

    Args:
        weight_key: batch key of the weight map ``(B, 1, *spatial)`` (written by ``UNetWeightMapd``).
        image_key: batch key of the network input.
        label_key: batch key of the label ``(B, 1, *spatial)`` (class indices) or ``(B, C, *spatial)`` (one-hot).

    Bundle ``train.json`` lines (no custom code needed)::

        "loss": {"_target_": "monai_unet2015.losses.WeightedCrossEntropyLoss", "weight_map_in_target": true},
        "prepare_batch": {"_target_": "monai_unet2015.engines.PrepareBatchWeightMap", "weight_key": "weight"},
        "trainer": {"_target_": "SupervisedTrainer", "loss_function": "@loss",
                    "prepare_batch": "@prepare_batch", ...}

    Examples::

        >>> import torch
        >>> from monai_unet2015.engines import PrepareBatchWeightMap
        >>> batch = {"image": torch.rand(2, 1, 8, 8), "label": torch.ones(2, 1, 8, 8),
        ...          "weight": torch.full((2, 1, 8, 8), 2.0)}
        >>> image, target = PrepareBatchWeightMap()(batch)
        >>> tuple(target.shape), float(target[0, 1, 0, 0])
        ((2, 2, 8, 8), 2.0)
    """

    def __init__(
        self, weight_key: str = "weight", image_key: str = CommonKeys.IMAGE, label_key: str = CommonKeys.LABEL
    ) -> None:
        self.weight_key = weight_key
        self.image_key = image_key
        self.label_key = label_key

    def __call__(
        self,
        batchdata: Mapping[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args `batchdata`, `device`, `non_blocking` follow the ignite ``prepare_batch`` API; `kwargs` are passed to
        ``Tensor.to()``.

        Returns:
            ``(image, target)`` on ``device``; ``target`` is the label with the weight map as last channel.
        """
        if not isinstance(batchdata, Mapping):
            raise TypeError(
                f"PrepareBatchWeightMap expects a dictionary batch, got {type(batchdata).__name__}."
            )
        missing = [k for k in (self.image_key, self.label_key, self.weight_key) if k not in batchdata]
        if missing:
            raise KeyError(
                f"PrepareBatchWeightMap: batch has no key(s) {missing}; available keys: {sorted(map(str, batchdata))}. "
                "Add the weight map with UNetWeightMapd(keys='label', weight_key='weight') in the train transforms."
            )
        image = batchdata[self.image_key]
        label = batchdata[self.label_key]
        weight = batchdata[self.weight_key]
        if not isinstance(label, torch.Tensor) or not isinstance(weight, torch.Tensor):
            raise TypeError(
                f"PrepareBatchWeightMap expects tensors under {self.label_key!r} and {self.weight_key!r}, got "
                f"{type(label).__name__} and {type(weight).__name__}."
            )
        target = pack_weight_map(label, weight)
        return (
            image.to(device=device, non_blocking=non_blocking, **kwargs),
            target.to(device=device, non_blocking=non_blocking, **kwargs),
        )

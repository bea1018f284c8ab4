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

"""Pixel-weighted softmax cross-entropy of the U-Net paper, cropping targets to a valid-padding output."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.nn.modules.loss import _Loss

from monai.utils import LossReduction, convert_to_tensor

from monai_unet2015.networks.nets.unet2015 import _center_crop

__all__ = ["WeightedCrossEntropyLoss", "center_crop_to"]


def center_crop_to(x: torch.Tensor, spatial_size: Sequence[int], name: str = "tensor") -> torch.Tensor:
    """Crop the spatial axes of ``x`` (``(B, C, *spatial)``) centrally to ``spatial_size``.

    A valid-padding network (:py:class:`~monai_unet2015.networks.nets.UNet2015`) loses the same number of pixels
    on both sides of every axis, so a target larger than the prediction is cropped by half the difference on each
    side. A negative or odd difference means the target does not belong to this prediction: ``ValueError``.
    The crop itself is the network's own (TorchScript-compatible) centre crop of its skip connections.

    Examples::

        >>> import torch
        >>> center_crop_to(torch.zeros(1, 1, 10, 8), (6, 8)).shape
        torch.Size([1, 1, 6, 8])
    """
    have = tuple(x.shape[2:])
    want = tuple(int(s) for s in spatial_size)
    if len(have) != len(want):
        raise ValueError(f"{name} has spatial shape {have}, the prediction {want}: the number of axes differs.")
    for axis, (h, w) in enumerate(zip(have, want)):
        margin = h - w
        if margin < 0 or margin % 2:
            raise ValueError(
                f"{name} of spatial shape {have} cannot be centre-cropped to the prediction's {want}: along axis "
                f"{axis} the margin is {margin}; it must be even and >= 0 (the same number of pixels lost on both "
                "sides, as with a valid-padding U-Net). Crop the image and the labels alike, to sizes from "
                "UNet2015.valid_input_sizes()."
            )
    return _center_crop(x, list(want))


class WeightedCrossEntropyLoss(_Loss):
    """Softmax cross-entropy with a per-pixel weight map (U-Net paper, Eq. 1).

    Ronneberger, Fischer & Brox, MICCAI 2015: ``E = sum_x w(x) * -log(p_l(x)(x))`` with the softmax ``p`` over
    the channels and ``l(x)`` the true class. Per element ``x`` (all batch items and pixels)::

        loss(x) = -class_weight[l(x)] * weight_map(x) * log_softmax(input)[l(x)](x)

    reduced with ``reduction``: ``"none"`` gives ``(B, 1, *spatial)``, ``"sum"`` the sum and ``"mean"`` the
    sum divided by ``sum_x class_weight[l(x)]`` (the number of elements without class weights). This is exactly
    ``torch.nn.CrossEntropyLoss(weight=class_weight, reduction=...)`` when no weight map is given, and the
    mean of ``weight_map * cross-entropy`` with a weight map and no class weights. The weight map is not
    renormalised, so its scale acts like a learning-rate factor.

    Valid-padding networks give predictions smaller than the target: target and weight map are centre-cropped
    to the prediction when they are larger by an even margin on every axis, otherwise a ``ValueError`` is raised.

    The log-softmax is computed in float32 whatever the input dtype, so the loss is stable under bf16/fp16
    autocast (the result is float32).

    Args:
        to_onehot_y: MONAI's flag for "the target holds class indices": with ``True`` the target must be
            ``(B, 1, *spatial)`` class indices. With ``False`` (default) it may be one-hot ``(B, C, *spatial)``
            (converted with argmax; soft labels are not supported) or class indices ``(B, 1, *spatial)``.
        weight: class weights, one per channel, as in ``torch.nn.CrossEntropyLoss`` and MONAI's losses.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.

    Examples::

        >>> import torch
        >>> from monai_unet2015.losses import WeightedCrossEntropyLoss
        >>> logits = torch.randn(2, 2, 4, 4)
        >>> label = torch.randint(0, 2, (2, 1, 8, 8))  # larger: centre-cropped to 4x4
        >>> weight_map = torch.ones(2, 1, 8, 8)
        >>> loss = WeightedCrossEntropyLoss()(logits, label, weight_map)
        >>> reference = torch.nn.CrossEntropyLoss()(logits, label[:, 0, 2:6, 2:6])
        >>> bool(torch.allclose(loss, reference))
        True

    In a bundle ``train.json``, with the weight map added by ``UNetWeightMapd`` under the key ``"weight"``,
    :py:class:`~monai_unet2015.engines.WeightMapTrainer` calls ``loss(pred, label, batch["weight"])``::

        "loss": {"_target_": "monai_unet2015.losses.WeightedCrossEntropyLoss"},
        "trainer": {"_target_": "monai_unet2015.engines.WeightMapTrainer", "weight_key": "weight",
                    "loss_function": "@loss", ...}
    """

    def __init__(
        self,
        to_onehot_y: bool = False,
        weight: Sequence[float] | torch.Tensor | None = None,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        self.to_onehot_y = bool(to_onehot_y)
        class_weight: torch.Tensor | None = None
        if weight is not None:
            class_weight = torch.as_tensor(weight, dtype=torch.float32).reshape(-1)
            if class_weight.numel() == 0 or not bool(torch.isfinite(class_weight).all()) or bool(
                (class_weight < 0).any()
            ):
                raise ValueError(f"weight must hold one finite, non-negative weight per class, got {weight!r}.")
        self.class_weight: torch.Tensor | None
        self.register_buffer("class_weight", class_weight)

    def _class_indices(self, target: torch.Tensor, num_classes: int) -> torch.Tensor:
        """``(B, *spatial)`` int64 class indices from a ``(B, 1 or C, *spatial)`` target."""
        channels = target.shape[1]
        if channels == 1 and num_classes > 1:
            indices = target[:, 0]
            if indices.is_floating_point():
                indices = indices.round()
            indices = indices.long()
        elif self.to_onehot_y:
            raise ValueError(
                f"to_onehot_y=True expects class indices with one channel, (B, 1, *spatial), got a target with "
                f"{channels} channels; pass to_onehot_y=False for one-hot targets."
            )
        elif channels == num_classes:
            indices = target.argmax(dim=1)
        else:
            raise ValueError(
                f"the target must have 1 channel (class indices) or {num_classes} channels (one-hot) for a "
                f"prediction with {num_classes} channels, got {channels} channels."
            )
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_classes):
            raise ValueError(
                f"class indices must lie in [0, {num_classes - 1}] for a prediction with {num_classes} channels, "
                f"got values in [{int(indices.min())}, {int(indices.max())}]."
            )
        return indices

    def forward(
        self, input: torch.Tensor, target: torch.Tensor, weight_map: torch.Tensor | None = None
    ) -> torch.Tensor:
        """
        Args:
            input: logits ``(B, C, *spatial)``, ``C >= 2``.
            target: ``(B, 1, *spatial')`` class indices or ``(B, C, *spatial')`` one-hot, with
                ``spatial' >= spatial`` by an even margin per axis (centre-cropped to ``spatial``).
            weight_map: optional per-pixel weights ``(B, 1, *spatial')`` or ``(B, *spatial')``, centre-cropped
                like the target (``WeightMapTrainer`` passes the batch's weight map here).

        Raises:
            ValueError: mismatching shapes, odd or negative margins, class indices out of range.
        """
        input = convert_to_tensor(input, track_meta=False)
        target = convert_to_tensor(target, track_meta=False, wrap_sequence=True)
        if input.ndim < 3:
            raise ValueError(f"input must have shape (B, C, *spatial), got {tuple(input.shape)}.")
        num_classes = input.shape[1]
        if num_classes < 2:
            raise ValueError(
                f"softmax cross-entropy needs a prediction with >= 2 channels, got {num_classes}; "
                "use a two-channel (background, foreground) output."
            )
        if target.ndim == input.ndim - 1:  # (B, *spatial) class indices, as for torch.nn.CrossEntropyLoss
            target = target.unsqueeze(1)
        if target.ndim != input.ndim or target.shape[0] != input.shape[0]:
            raise ValueError(
                f"target shape {tuple(target.shape)} does not match input shape {tuple(input.shape)}: "
                "expected (B, 1 or C, *spatial) with the same batch size and number of spatial axes."
            )
        spatial = tuple(input.shape[2:])
        target = center_crop_to(target, spatial, "target")
        indices = self._class_indices(target, num_classes).to(input.device)

        log_p = F.log_softmax(input.float(), dim=1)
        loss = -log_p.gather(1, indices.unsqueeze(1))  # (B, 1, *spatial)
        denominator: torch.Tensor | float = float(loss.numel())
        if self.class_weight is not None:
            if self.class_weight.numel() != num_classes:
                raise ValueError(
                    f"weight has {self.class_weight.numel()} class weights, the prediction {num_classes} channels."
                )
            per_pixel_class_weight = self.class_weight.to(loss.device)[indices].unsqueeze(1)
            loss = loss * per_pixel_class_weight
            denominator = per_pixel_class_weight.sum()
        if weight_map is not None:
            weight_map = convert_to_tensor(weight_map, track_meta=False, wrap_sequence=True)
            if weight_map.ndim == input.ndim - 1:
                weight_map = weight_map.unsqueeze(1)
            if weight_map.ndim != input.ndim or weight_map.shape[0] != input.shape[0] or weight_map.shape[1] != 1:
                raise ValueError(
                    f"weight_map must have shape (B, 1, *spatial) or (B, *spatial) with B = {input.shape[0]}, "
                    f"got {tuple(weight_map.shape)}."
                )
            weight_map = center_crop_to(weight_map, spatial, "weight_map")
            loss = loss * weight_map.to(device=loss.device, dtype=torch.float32)

        if self.reduction == LossReduction.NONE.value:
            return loss
        if self.reduction == LossReduction.SUM.value:
            return loss.sum()
        return loss.sum() / denominator

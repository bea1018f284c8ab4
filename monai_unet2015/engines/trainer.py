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

"""A ``SupervisedTrainer`` that hands the U-Net weight map to the loss under its own batch key, with bf16
autocast on any device (CPU included)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import torch

from monai.engines import SupervisedTrainer
from monai.utils import CommonKeys

__all__ = ["WeightMapTrainer"]

_RESERVED_KEYS = (CommonKeys.IMAGE, CommonKeys.LABEL, CommonKeys.PRED, CommonKeys.LOSS)
_AMP_DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def _amp_dtype(value: str | torch.dtype | None) -> torch.dtype | None:
    if value is None or value in (torch.bfloat16, torch.float16):
        return value
    if isinstance(value, str) and value.strip().lower() in _AMP_DTYPES:
        return _AMP_DTYPES[value.strip().lower()]
    raise ValueError(
        f"amp_dtype must be None, 'bfloat16' / torch.bfloat16 or 'float16' / torch.float16, got {value!r}."
    )


class _LossWithWeightMap:
    """``loss_function(pred, label)`` as called by ``SupervisedTrainer``, calling
    ``loss_function(pred, label, weight_map)`` and recording the weight map in ``engine.state.output``."""

    def __init__(self, loss_function: Callable, weight_map: torch.Tensor, engine: SupervisedTrainer, key: Hashable):
        self.loss_function = loss_function
        self.weight_map = weight_map
        self.engine = engine
        self.key = key

    def __call__(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        self.engine.state.output[self.key] = self.weight_map
        return self.loss_function(pred, label, self.weight_map)


class _AutocastInferer:
    """``inferer(inputs, network, ...)`` under ``torch.autocast(device_type, dtype)``, its prediction cast back to
    float32, so that the loss is computed in float32 (outside autocast) and its gradient flows back in ``dtype``."""

    def __init__(self, inferer: Callable, device_type: str, dtype: torch.dtype):
        self.inferer = inferer
        self.device_type = device_type
        self.dtype = dtype

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast(self.device_type, dtype=self.dtype):
            pred = self.inferer(inputs, network, *args, **kwargs)
        if isinstance(pred, torch.Tensor) and pred.dtype in (torch.bfloat16, torch.float16):
            pred = pred.float()
        return pred


class WeightMapTrainer(SupervisedTrainer):
    """MONAI's ``SupervisedTrainer`` that passes a per-pixel weight map from the batch to the loss.

    When the batch is a dictionary holding ``weight_key``, every iteration moves ``batch[weight_key]`` to the
    device as ``prepare_batch`` moves image and label (same ``non_blocking`` and ``to_kwargs``) and calls
    ``loss_function(pred, label, weight_map)``, e.g. with
    :py:class:`~monai_unet2015.losses.WeightedCrossEntropyLoss` and the map written by
    :py:class:`~monai_unet2015.transforms.UNetWeightMapd`. The weight map is also stored in
    ``engine.state.output[weight_key]`` (from ``IterationEvents.LOSS_COMPLETED`` on, so for metrics,
    postprocessing and ``ITERATION_COMPLETED`` handlers; decollated per item like the other entries), while
    ``engine.state.output["label"]`` stays the label returned by ``prepare_batch``.

    Everything else is ``SupervisedTrainer._iteration`` itself, unchanged: ``prepare_batch``, the inferer, amp
    and the grad scaler, ``optimizer.zero_grad``, gradient accumulation, ``torch.compile`` and the events
    ``FORWARD_COMPLETED``, ``LOSS_COMPLETED``, ``BACKWARD_COMPLETED``, ``MODEL_COMPLETED``; for the duration of
    one iteration ``loss_function`` is wrapped so that it receives the weight map. Without a weight map (the
    key is missing from the batch, the batch is not a dictionary, or ``weight_key=None``) and without
    ``amp_dtype`` an iteration is exactly ``SupervisedTrainer``'s, with ``loss_function(pred, label)``. A custom
    ``iteration_update`` replaces this logic, as in ``SupervisedTrainer``.

    Mixed precision on any device: MONAI's ``amp=True`` is CUDA's float16 autocast only (on a CPU it does
    nothing). ``amp_dtype="bfloat16"`` runs the inferer's forward pass under ``torch.autocast(device.type,
    dtype=torch.bfloat16)`` on the trainer's device, CPU included, and casts the prediction back to float32:
    the loss, ``engine.state.output["pred"]`` and the optimiser step stay float32, and bf16 needs no grad
    scaler. ``amp_dtype="float16"`` is MONAI's own path (``amp=True``, float16 autocast with the grad scaler),
    CUDA only. :py:func:`~monai_unet2015.engines.choose_precision` says which dtype is faster on this machine:
    bf16 autocast is much slower than float32 on CPUs without AMX / AVX512-BF16.

    Args:
        args: positional arguments of ``monai.engines.SupervisedTrainer``.
        weight_key: batch key of the weight map ``(B, 1, *spatial)``, also its key in ``engine.state.output``;
            ``None`` turns the weight map off. It must differ from ``"image"``, ``"label"``, ``"pred"`` and
            ``"loss"``.
        amp_dtype: ``None`` (default: ``amp`` as in ``SupervisedTrainer``), ``"bfloat16"`` / ``torch.bfloat16``
            (autocast of the trainer's device, see above) or ``"float16"`` / ``torch.float16`` (CUDA only: MONAI's
            ``amp=True``). Not together with ``amp=True``.
        kwargs: keyword arguments of ``monai.engines.SupervisedTrainer`` (``device``, ``max_epochs``,
            ``train_data_loader``, ``network``, ``optimizer``, ``loss_function``, ...). ``loss_function`` must
            accept ``(pred, label, weight_map)`` when the batches hold a weight map, as
            :py:class:`~monai_unet2015.losses.WeightedCrossEntropyLoss` does.

    Raises:
        ValueError: ``weight_key`` is one of the reserved output keys; ``amp_dtype`` is not one of the above, is
            given with ``amp=True``, or is float16 on a device other than CUDA.
        TypeError: ``weight_key`` is not a string or ``None``; at run time, the batch holds something other than
            a tensor under ``weight_key``.

    Moving a ``SupervisedTrainer`` pipeline to the weight map is one change, the trainer's class (bundle
    ``train.json``; no custom ``prepare_batch``, the loss needs no option)::

        "loss": {"_target_": "monai_unet2015.losses.WeightedCrossEntropyLoss"},
        "trainer": {"_target_": "monai_unet2015.engines.WeightMapTrainer", "weight_key": "weight",
                    "loss_function": "@loss", ...}

    Examples::

        >>> import torch
        >>> from monai_unet2015.engines import WeightMapTrainer
        >>> from monai_unet2015.losses import WeightedCrossEntropyLoss
        >>> net = torch.nn.Conv2d(1, 2, 3)  # valid padding: 8 x 8 in, 6 x 6 out
        >>> batch = {"image": torch.rand(2, 1, 8, 8), "label": torch.randint(0, 2, (2, 1, 8, 8)),
        ...          "weight": torch.full((2, 1, 8, 8), 2.0)}
        >>> trainer = WeightMapTrainer(
        ...     device="cpu", max_epochs=1, train_data_loader=[batch], network=net,
        ...     optimizer=torch.optim.SGD(net.parameters(), lr=0.0), loss_function=WeightedCrossEntropyLoss(),
        ...     weight_key="weight", decollate=False)
        >>> trainer.run()
        >>> output = trainer.state.output
        >>> bool(torch.equal(output["label"], batch["label"])), bool(torch.equal(output["weight"], batch["weight"]))
        (True, True)
        >>> with torch.no_grad():
        ...     unweighted = WeightedCrossEntropyLoss()(net(batch["image"]), batch["label"])
        >>> bool(torch.isclose(output["loss"], 2 * unweighted))  # the loss got the weight map (all 2)
        True
    """

    def __init__(
        self, *args: Any, weight_key: str | None = "weight", amp_dtype: str | torch.dtype | None = None, **kwargs: Any
    ) -> None:
        if weight_key is not None:
            if not isinstance(weight_key, str):
                raise TypeError(
                    f"weight_key must be a string (the batch key of the weight map) or None, got "
                    f"{type(weight_key).__name__} ({weight_key!r})."
                )
            if weight_key in _RESERVED_KEYS:
                raise ValueError(
                    f"weight_key {weight_key!r} would overwrite engine.state.output[{weight_key!r}]: choose a key "
                    f"other than {[str(k) for k in _RESERVED_KEYS]}, e.g. 'weight', or None for no weight map."
                )
        amp_dtype = _amp_dtype(amp_dtype)
        if amp_dtype is not None and kwargs.get("amp"):
            raise ValueError(f"pass amp_dtype={amp_dtype} or amp=True, not both (amp=True is CUDA's float16 autocast).")
        if amp_dtype == torch.float16:  # MONAI's own amp: float16 autocast and the grad scaler, CUDA only
            kwargs["amp"] = True
            kwargs["amp_kwargs"] = {**(kwargs.get("amp_kwargs") or {}), "dtype": torch.float16}
        super().__init__(*args, **kwargs)
        if amp_dtype == torch.float16 and torch.device(self.state.device).type != "cuda":
            raise ValueError(
                f"amp_dtype float16 needs a CUDA device (MONAI's grad scaler), got {self.state.device}; use "
                "'bfloat16' on a CPU."
            )
        self.weight_key = weight_key
        #: the autocast dtype of the forward pass (``None``: ``amp`` as in ``SupervisedTrainer``)
        self.amp_dtype = amp_dtype

    def _weight_map(self, engine: SupervisedTrainer, batchdata: Any) -> torch.Tensor | None:
        """The batch's weight map on the engine's device, or ``None`` when there is none."""
        if self.weight_key is None or not isinstance(batchdata, Mapping) or self.weight_key not in batchdata:
            return None
        weight_map = batchdata[self.weight_key]
        if not isinstance(weight_map, torch.Tensor):
            raise TypeError(
                f"WeightMapTrainer expects a tensor under the batch key {self.weight_key!r} (the weight map), got "
                f"{type(weight_map).__name__}."
            )
        return weight_map.to(device=engine.state.device, non_blocking=engine.non_blocking, **engine.to_kwargs)

    def _iteration(self, engine: SupervisedTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        """
        ``SupervisedTrainer._iteration`` with ``loss_function(pred, label, weight_map)`` when the batch holds a
        weight map; the returned ``engine.state.output`` then has the weight map under ``weight_key``.

        Args:
            engine: the trainer running this iteration.
            batchdata: the batch of this iteration, usually a dictionary of tensors.
        """
        weight_map = self._weight_map(engine, batchdata)
        autocast = self.amp_dtype == torch.bfloat16
        if weight_map is None and not autocast:
            return super()._iteration(engine, batchdata)
        loss_function, inferer = engine.loss_function, engine.inferer
        if weight_map is not None:
            engine.loss_function = _LossWithWeightMap(loss_function, weight_map, engine, self.weight_key)
        if autocast:
            engine.inferer = _AutocastInferer(inferer, torch.device(engine.state.device).type, self.amp_dtype)
        try:
            return super()._iteration(engine, batchdata)
        finally:
            engine.loss_function, engine.inferer = loss_function, inferer

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

"""The steps of a bundle's training ``run`` that are code, not choices: fine-tuning, resuming, the progress bar,
selection."""

from __future__ import annotations

import sys
from typing import Any

__all__ = [
    "init_weights", "weight_ema", "attach_ema", "training_state", "resume_from", "attach_progress_bar",
    "lower_is_better", "loader_workers", "lr_scheduler", "LR_SCHEDULES",
]

LR_SCHEDULES = ("cosine", "constant")


def loader_workers(reserve: int = 2, most: int = 4, cpus: int | None = None) -> int:
    """DataLoader worker processes for training on this machine: the cores beyond the ``reserve`` that the
    training step's own threads use, at most ``most``; 0 on a 2-core machine, where loader processes only take
    cores from the step (docs/benchmarks.md, "Training precision": 19,357 against 16,514 iterations per hour with
    bf16 on 2 cores).

    Examples::

        >>> loader_workers(cpus=2), loader_workers(cpus=4), loader_workers(cpus=64)
        (0, 2, 4)
    """
    import os

    count = (os.cpu_count() or 1) if cpus is None else int(cpus)
    return max(0, min(int(most), count - int(reserve)))


def lower_is_better(current: float, prev: float) -> bool:
    """``metric_cmp_fn`` of an evaluator whose key metric is an error: the first value, then any lower one.

    Examples::

        >>> lower_is_better(0.2, -1.0), lower_is_better(0.1, 0.2), lower_is_better(0.3, 0.2)
        (True, True, False)
    """
    return prev < 0 or current < prev


def lr_scheduler(optimizer: Any, schedule: str = "cosine", epochs: int = 1, final_lr_ratio: float = 0.01) -> Any:
    """The learning-rate schedule of a bundle's training, stepped once per epoch (MONAI's ``LrScheduleHandler``).

    - ``"cosine"``: after epoch ``e`` the rate is the optimiser's rate times
      ``r + (1 - r) (1 + cos(pi e / epochs)) / 2`` with ``r = final_lr_ratio``: half a cosine down to ``r`` times the
      rate at the end of the run, so that the last weights of a run are those of a small rate, and a run can ship
      its final weights instead of the checkpoint that one lucky validation picked.
    - ``"constant"``: the paper's fixed rate.

    The rate is computed from the epoch in closed form (``torch.optim.lr_scheduler.LambdaLR``); its state (the
    epoch and the base rate) goes into the training checkpoints, and ``resume_from`` sets the base rate of the
    resuming command line, so that a resumed run continues along the schedule of the ``epochs`` it is given.

    Examples::

        >>> import torch
        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> sched = lr_scheduler(opt, "cosine", epochs=4, final_lr_ratio=0.0)
        >>> rates = []
        >>> for _ in range(4):
        ...     opt.step(); sched.step(); rates.append(round(opt.param_groups[0]["lr"], 4))
        >>> rates
        [0.0854, 0.05, 0.0146, 0.0]
    """
    import math

    import torch
    from monai.utils import look_up_option

    schedule = look_up_option(schedule, LR_SCHEDULES)
    total, ratio = int(epochs), float(final_lr_ratio)
    if total < 1:
        raise ValueError(f"epochs must be >= 1 for the learning-rate schedule, got {epochs!r}.")
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"final_lr_ratio must be in [0, 1], got {final_lr_ratio!r}.")

    def factor(epoch: int) -> float:  # a function, not an object: LambdaLR keeps it out of the checkpoint
        if schedule == "constant":
            return 1.0
        return ratio + (1.0 - ratio) * 0.5 * (1.0 + math.cos(math.pi * min(epoch, total) / total))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def init_weights(network: Any, checkpoint: str | None, features: Any, key: str = "init_ckpt") -> bool:
    """Start a training from trained weights instead of the random initialisation: fine-tuning.

    ``checkpoint`` is a bundle's ``models/model.pt`` (float16 or float32), a run's ``model.pt`` or a training
    checkpoint (its ``"model"`` entry); only the network's weights are taken, the optimiser, the epoch and the
    learning-rate schedule start afresh. Its width is checked against the ``features`` the config builds before
    any work starts (:py:func:`~monai_unet2015.bundle.checkpoint.check_checkpoint`, errors name ``--<key>``).
    ``None`` or ``""``: nothing is loaded. A run resumed with ``--resume true`` continues from its own checkpoint,
    which is loaded when the trainer starts, after this. Returns whether weights were loaded.

    Examples::

        >>> import tempfile, torch
        >>> from monai_unet2015.networks.nets import UNet2015
        >>> trained, fresh = UNet2015(features=(4, 8, 16)), UNet2015(features=(4, 8, 16))
        >>> path = tempfile.mkdtemp() + "/model.pt"
        >>> torch.save({k: v.half() for k, v in trained.state_dict().items()}, path)
        >>> init_weights(fresh, path, features=[4, 8, 16])
        True
        >>> bool(torch.equal(fresh.final_conv.weight, trained.final_conv.weight.half().float()))
        True
        >>> init_weights(fresh, None, features=[4, 8, 16])
        False
    """
    from .checkpoint import check_width, read_state_dict
    from .options import is_unset

    if is_unset(checkpoint):
        return False
    state = read_state_dict(checkpoint, key)
    check_width(state, checkpoint, features, key=key)
    target = getattr(network, "module", network)  # DistributedDataParallel wraps the network
    target.load_state_dict(state)  # copied into the network's own dtype
    return True


def weight_ema(network: Any, momentum: Any = None) -> Any:
    """An exponential moving average (EMA) of the network's weights over the training, or ``None`` (off).

    After every iteration ``ema = (1 - momentum) * ema + momentum * weights`` (ignite's ``EMAHandler``), so the
    EMA remembers about the last ``1 / momentum`` iterations (0.001: the last ~1,000, 20 epochs of 50): weights
    that smooth the noise of the last iterations without choosing a checkpoint by a validation score. It starts
    from the network as it is when this is called (after ``init_weights``), is saved in the training checkpoints
    as ``"ema_model"`` (:py:func:`training_state`), restored on resume, and shipped with
    ``export_weights(checkpoint, path, entry="ema_model")``. ``momentum`` ``None``, ``0`` or ``"null"``: off.

    Examples::

        >>> from monai_unet2015.networks.nets import UNet2015
        >>> weight_ema(UNet2015(features=(4, 8, 16)), None) is None
        True
        >>> type(weight_ema(UNet2015(features=(4, 8, 16)), 0.001)).__name__
        'EMAHandler'
    """
    from .options import as_momentum

    value = as_momentum(momentum)
    if value is None:
        return None
    from ignite.handlers import EMAHandler

    return EMAHandler(network, momentum=value)


def attach_ema(ema: Any, trainer: Any) -> bool:
    """Update ``ema`` (:py:func:`weight_ema`) after every iteration of ``trainer``; returns whether it is on.

    Examples::

        >>> attach_ema(None, trainer=None)
        False
    """
    if ema is None:
        return False
    ema.attach(trainer, name="ema_momentum", warn_if_exists=False)
    return True


def training_state(network: Any, optimizer: Any, trainer: Any, lr_scheduler: Any = None, ema: Any = None) -> dict:
    """What a training checkpoint holds (``CheckpointSaver(save_dict=...)``), and what resuming loads back:
    ``model``, ``optimizer``, ``trainer``, ``lr_scheduler`` when given and ``ema_model`` when the weight EMA is on.

    Examples::

        >>> sorted(training_state("net", "opt", "trainer", "sched"))
        ['lr_scheduler', 'model', 'optimizer', 'trainer']
    """
    state = {"model": network, "optimizer": optimizer, "trainer": trainer}
    if lr_scheduler is not None:
        state["lr_scheduler"] = lr_scheduler
    if ema is not None:
        state["ema_model"] = ema.ema_model
    return state


def resume_from(
    checkpoint: str | None, trainer: Any, network: Any, optimizer: Any, learning_rate: float | None = None,
    device: Any = None, lr_scheduler: Any = None, ema: Any = None,
) -> bool:
    """Make ``trainer`` continue from ``checkpoint`` (``None``: start afresh); returns whether it resumes.

    Loads ``{"model", "optimizer", "trainer"}`` (and ``"lr_scheduler"`` when given) with MONAI's
    ``CheckpointLoader`` when the trainer starts, so that ignite continues at the saved epoch and iteration, and
    then sets the optimiser's learning rate to ``learning_rate`` (the value of the resuming command line; the rest
    of the optimiser state is kept). With a ``lr_scheduler`` from :py:func:`lr_scheduler`, ``learning_rate``
    becomes the schedule's base rate and the optimiser gets the schedule's rate at the saved epoch. With a weight
    ``ema`` (:py:func:`weight_ema`) its average is restored too; a checkpoint of a run that had none starts the
    average from the resumed weights.

    Examples::

        >>> resume_from(None, trainer=None, network=None, optimizer=None)
        False
    """
    if not checkpoint:
        return False
    from ignite.engine import Events

    from monai.handlers import CheckpointLoader

    import torch

    load = training_state(network, optimizer, trainer, lr_scheduler)
    restart_ema = False
    if ema is not None:
        # mmap: only the entry names are read here; the loader below reads the tensors
        if "ema_model" in torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True):
            load["ema_model"] = ema.ema_model
        else:
            restart_ema = True
    CheckpointLoader(load_path=checkpoint, load_dict=load, map_location=device).attach(trainer)
    if restart_ema:  # after the loader (handlers run in the order they were added)

        def _restart_ema(engine: Any) -> None:
            ema.ema_model.load_state_dict(ema.model.state_dict())

        trainer.add_event_handler(Events.STARTED, _restart_ema)
    if learning_rate is not None:

        def _set_lr(engine: Any) -> None:
            if lr_scheduler is not None:
                lr_scheduler.base_lrs = [float(learning_rate)] * len(optimizer.param_groups)
            for i, group in enumerate(optimizer.param_groups):
                scale = 1.0 if lr_scheduler is None else lr_scheduler.lr_lambdas[i](lr_scheduler.last_epoch)
                group["lr"] = float(learning_rate) * scale

        trainer.add_event_handler(Events.STARTED, _set_lr)
    return True


def attach_progress_bar(trainer: Any, enabled: bool = True) -> bool:
    """Attach ignite's progress bar (with the loss) when ``enabled`` and stderr is a terminal; returns whether.

    Without a terminal (a log file, CI) the bar's carriage returns would interleave with the per-iteration log
    lines of ``StatsHandler``, which the bundles switch on exactly then.

    Examples::

        >>> attach_progress_bar(None, enabled=False)
        False
    """
    if not enabled or not sys.stderr.isatty():
        return False
    from ignite.contrib.handlers import ProgressBar

    from monai.handlers import from_engine

    loss = from_engine(["loss"], first=True)
    ProgressBar(persist=False).attach(trainer, output_transform=lambda output: {"loss": loss(output)})
    return True

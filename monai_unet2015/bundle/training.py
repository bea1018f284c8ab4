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

"""The steps of a bundle's training ``run`` that are code, not choices: resuming, the progress bar, selection."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["resume_from", "attach_progress_bar", "lower_is_better", "loader_workers"]


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


def resume_from(
    checkpoint: str | None, trainer: Any, network: Any, optimizer: Any, learning_rate: float | None = None,
    device: Any = None,
) -> bool:
    """Make ``trainer`` continue from ``checkpoint`` (``None``: start afresh); returns whether it resumes.

    Loads ``{"model", "optimizer", "trainer"}`` with MONAI's ``CheckpointLoader`` when the trainer starts, so
    that ignite continues at the saved epoch and iteration, and then sets the optimiser's learning rate to
    ``learning_rate`` (the value of the resuming command line; the rest of the optimiser state is kept).

    Examples::

        >>> resume_from(None, trainer=None, network=None, optimizer=None)
        False
    """
    if not checkpoint:
        return False
    from ignite.engine import Events

    from monai.handlers import CheckpointLoader

    load = {"model": network, "optimizer": optimizer, "trainer": trainer}
    CheckpointLoader(load_path=checkpoint, load_dict=load, map_location=device).attach(trainer)
    if learning_rate is not None:

        def _set_lr(engine: Any) -> None:
            for group in optimizer.param_groups:
                group["lr"] = float(learning_rate)

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

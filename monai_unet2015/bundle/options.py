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


"""Bundle options as ``monai.bundle run`` delivers them: booleans (or ``auto``) from the command line, training
run folders.

``monai.bundle run`` hands command-line values to the config through python-fire, so ``--tta false`` arrives
as the *string* ``'false'`` (true in Python) while ``--tta False`` arrives as the bool. The bundles read every
boolean key through :py:func:`as_bool`, which accepts the usual spellings and refuses anything else.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .errors import BundleInputError

__all__ = ["as_bool", "as_bool_or_auto", "as_momentum", "is_unset", "on_gpu_if_auto", "run_folder", "TRUE_WORDS", "FALSE_WORDS"]

TRUE_WORDS = ("true", "yes", "1", "on")
FALSE_WORDS = ("false", "no", "0", "off")


def as_bool(value: Any, key: str = "value") -> bool:
    """The boolean meant by ``value``, a config entry or a command-line string.

    Accepts ``True``/``False``, ``1``/``0`` and the strings ``true/false``, ``yes/no``, ``1/0``, ``on/off`` in
    any letter case; anything else raises :py:class:`~monai_unet2015.bundle.errors.BundleInputError` naming
    ``key`` and the accepted values.

    Args:
        value: the value to read.
        key: the config key, for the error message.

    Examples::

        >>> as_bool("false", "tta"), as_bool("True", "tta"), as_bool(0, "tta"), as_bool("yes", "tta")
        (False, True, False, True)
        >>> as_bool("maybe", "tta")
        Traceback (most recent call last):
        ...
        monai_unet2015.bundle.errors.BundleInputError: --tta got 'maybe'; use one of true/false, yes/no, 1/0, on/off.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy / torch scalars
        return as_bool(value.item(), key)
    raise BundleInputError(f"--{key} got {value!r}; use one of true/false, yes/no, 1/0, on/off.")


def as_bool_or_auto(value: Any, key: str = "value") -> bool | str:
    """``"auto"`` (any letter case), or the boolean meant by ``value`` as read by :py:func:`as_bool`.

    For the keys whose default is decided on the machine, e.g. ``amp`` and ``channels_last`` of the training
    configs (:py:func:`~monai_unet2015.engines.choose_precision`). Anything else raises
    :py:class:`~monai_unet2015.bundle.errors.BundleInputError` naming ``key`` and the accepted values.

    Args:
        value: the value to read.
        key: the config key, for the error message.

    Examples::

        >>> as_bool_or_auto("AUTO", "amp"), as_bool_or_auto("off", "amp"), as_bool_or_auto(True, "amp")
        ('auto', False, True)
        >>> as_bool_or_auto("maybe", "amp")
        Traceback (most recent call last):
        ...
        monai_unet2015.bundle.errors.BundleInputError: --amp got 'maybe'; use auto or one of ...
    """
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return as_bool(value, key)
    except BundleInputError:
        raise BundleInputError(f"--{key} got {value!r}; use auto or one of true/false, yes/no, 1/0, on/off.") from None


def is_unset(value: Any) -> bool:
    """Whether a config value means "not given": ``None``, or a string that is empty, ``none`` or ``null`` (as
    python-fire passes them from the command line).

    Examples::

        >>> is_unset(None), is_unset(" Null "), is_unset(""), is_unset("models/model.pt"), is_unset(0)
        (True, True, True, False, False)
    """
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null"))


def as_momentum(value: Any, key: str = "ema_momentum") -> float | None:
    """The momentum meant by ``value``, a number in [0, 1), or ``None`` where it is unset (:py:func:`is_unset`) or 0.

    For the training configs' ``ema_momentum`` (the weight average,
    :py:func:`~monai_unet2015.bundle.training.weight_ema`); the bundles read it among their ``flags``, before the
    run folder is made, so a bad value leaves nothing behind. Anything else raises
    :py:class:`~monai_unet2015.bundle.errors.BundleInputError` naming ``key`` and the accepted values.

    Examples::

        >>> as_momentum("0.001"), as_momentum(None), as_momentum("null"), as_momentum(0)
        (0.001, None, None, None)
    """
    if is_unset(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or number != number or not 0.0 <= number < 1.0:
        raise BundleInputError(
            f"--{key} got {value!r}: give a number in (0, 1), e.g. 0.001 (an average over about the last "
            "1,000 iterations), or 0 / null to train without the weight average."
        )
    return None if number == 0.0 else number


def on_gpu_if_auto(value: Any, key: str, device: Any) -> bool:
    """The boolean meant by ``value`` (:py:func:`as_bool_or_auto`), where ``"auto"`` means: on when ``device`` is
    a GPU.

    For the bundles' ``tta``: the 8 flips / rotations are 8 times the work, seconds per slice on a CPU but
    milliseconds on a GPU, so ``"auto"`` averages them on a GPU only. ``device`` is a torch device or its name;
    ``"auto"`` (``inference_large.json``'s default) is the GPU where this process has one.

    Examples::

        >>> on_gpu_if_auto("auto", "tta", "cpu"), on_gpu_if_auto("auto", "tta", "cuda:0")
        (False, True)
        >>> on_gpu_if_auto("yes", "tta", "cpu"), on_gpu_if_auto("false", "tta", "cuda")
        (True, False)
    """
    import torch

    flag = as_bool_or_auto(value, key)
    if flag != "auto":
        return flag
    if str(device) == "auto":
        return torch.cuda.is_available()
    return torch.device(device).type == "cuda"


def _is_distributed() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return False
    return dist.is_available() and dist.is_initialized()


def _has_checkpoints(folder: Path) -> bool:
    return any((folder / "checkpoints").glob("checkpoint*.pt"))


def run_folder(runs_dir: str | Path, run_name: Any = None, resume: Any = False) -> str:
    """The folder of one training run, ``runs_dir/<run_name>``: where it writes its checkpoints and models.

    Training never writes onto a bundle's shipped ``models/model.pt``; each run has its own folder, and an
    existing run is never overwritten:

    - no ``run_name``, no ``resume``: a new folder named after the current time;
    - no ``run_name``, ``resume``: the newest run in ``runs_dir`` that holds checkpoints;
    - ``run_name`` given, no ``resume``: that folder, which must not hold checkpoints yet;
    - ``run_name`` given, ``resume``: that folder, which must hold checkpoints.

    Under ``torch.distributed`` rank 0 decides and the other ranks use its folder.

    Args:
        runs_dir: the folder of all runs (the bundles use ``<bundle_root>/runs``).
        run_name: the run's name (``None`` or ``""``: see above).
        resume: continue the run from its newest checkpoint (read with :py:func:`as_bool`).

    Raises:
        BundleInputError: nothing to resume, or a new run would overwrite an existing one.

    Examples::

        >>> import tempfile, os
        >>> runs = tempfile.mkdtemp()
        >>> os.path.basename(run_folder(runs, "first"))
        'first'
        >>> os.makedirs(os.path.join(runs, "first", "checkpoints"))
        >>> open(os.path.join(runs, "first", "checkpoints", "checkpoint_epoch=1.pt"), "w").close()
        >>> os.path.basename(run_folder(runs, None, resume="true"))
        'first'
        >>> run_folder(runs, "first")
        Traceback (most recent call last):
        ...
        monai_unet2015.bundle.errors.BundleInputError: ...
    """
    resume = as_bool(resume, "resume")
    name = None if run_name is None or str(run_name).strip() in ("", "None", "null") else str(run_name).strip()
    if _is_distributed():
        import torch.distributed as dist

        choice = [None]
        if dist.get_rank() == 0:
            try:
                choice = [_decide(Path(runs_dir), name, resume)]
            except BundleInputError as e:
                choice = [e]
        dist.broadcast_object_list(choice, src=0)
        if isinstance(choice[0], BundleInputError):
            raise choice[0]
        return choice[0]
    return _decide(Path(runs_dir), name, resume)


def _decide(runs: Path, name: str | None, resume: bool) -> str:
    if runs.exists() and not runs.is_dir():
        raise BundleInputError(f"the runs folder {runs} is a file; move it away or pass another --bundle_root.")
    if name is not None and (Path(name).name != name or name in (".", "..")):
        raise BundleInputError(f"--run_name {name!r} must be a plain folder name (no '/'), e.g. --run_name long_run.")
    if resume:
        if name is None:
            runs_with = sorted((d for d in runs.glob("*") if d.is_dir() and _has_checkpoints(d)),
                               key=lambda d: max(f.stat().st_mtime_ns for f in (d / "checkpoints").glob("*.pt")))
            if not runs_with:
                raise BundleInputError(
                    f"--resume true: no run with checkpoints in {runs}; train without --resume first, or pass "
                    "--run_name of a run to continue."
                )
            return str(runs_with[-1])
        folder = runs / name
        if not _has_checkpoints(folder):
            have = ", ".join(sorted(d.name for d in runs.glob("*") if d.is_dir() and _has_checkpoints(d))) or "none"
            raise BundleInputError(
                f"--resume true --run_name {name}: {folder / 'checkpoints'} holds no checkpoint to resume from "
                f"(runs with checkpoints: {have})."
            )
        return str(folder)
    if name is None:
        name = time.strftime("%Y%m%d-%H%M%S")
        k = 1
        while (runs / name).exists():
            k += 1
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{k}"
        folder = runs / name
    else:
        folder = runs / name
        if _has_checkpoints(folder):
            raise BundleInputError(
                f"--run_name {name}: {folder} already holds a training run; pass --resume true to continue it, "
                "or another --run_name for a new run (nothing was overwritten)."
            )
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)

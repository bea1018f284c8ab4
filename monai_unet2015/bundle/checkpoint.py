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

"""Checkpoints of the bundles: the one a killed training run resumes from, the network a state dict belongs to."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import BundleInputError

__all__ = [
    "latest_checkpoint", "read_state_dict", "unet2015_args_from_state_dict", "check_checkpoint", "export_weights",
    "average_weights",
]


def latest_checkpoint(checkpoint_dir: str | Path, pattern: str = "checkpoint*.pt") -> str | None:
    """The most recently written checkpoint in ``checkpoint_dir``, or ``None`` when there is none.

    The bundles' ``train.json`` saves ``{"model", "optimizer", "trainer"}`` checkpoints with MONAI's
    ``CheckpointSaver`` (``checkpoint_epoch=N.pt`` and, at the end, ``checkpoint_final.pt``); with
    ``"resume": true`` it loads the one returned here with ``CheckpointLoader``, so that ignite continues
    from the saved epoch and iteration.

    Args:
        checkpoint_dir: folder of the checkpoints; a missing folder means no checkpoint.
        pattern: glob pattern of the checkpoint files.

    Examples::

        >>> import tempfile, torch
        >>> d = tempfile.mkdtemp()
        >>> latest_checkpoint(d) is None
        True
        >>> torch.save({}, f"{d}/checkpoint_epoch=1.pt")
        >>> latest_checkpoint(d).endswith("checkpoint_epoch=1.pt")
        True
    """
    folder = Path(checkpoint_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"checkpoint_dir {str(folder)!r} exists but is not a folder.")
    if not folder.is_dir():
        return None
    files = [f for f in folder.glob(pattern) if f.is_file()]
    if not files:
        return None
    # newest first; the name breaks ties of equal modification times (same second on coarse file systems)
    return str(max(files, key=lambda f: (f.stat().st_mtime_ns, f.name)))


_LEVEL = re.compile(r"^downs\.(\d+)\.convs\.conv_0\.conv\.weight$")


def read_state_dict(path: str | Path, key: str = "ckpt_path", entry: str = "model") -> dict:
    """The network state dict in the checkpoint file ``path``: a bare state dict or its ``entry`` (``"model"``;
    ``"ema_model"``: the weight average of a training with ``ema_momentum``).

    Raises :py:class:`~monai_unet2015.bundle.errors.BundleInputError` (naming ``key``) when the file is missing
    or is not a PyTorch checkpoint of a network.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        hint = "it does not exist" if not path.exists() else "it is not a file"
        raise BundleInputError(
            f"--{key} {path}: {hint}. Give the .pt file of a trained model (a bundle ships models/model.pt; "
            "training writes runs/<run>/model.pt)."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated or not a torch file: one line of the loader's complaint
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BundleInputError(f"--{key} {path} is not a readable PyTorch checkpoint ({first[:200]}).") from None
    if isinstance(state, Mapping) and isinstance(state.get(entry), Mapping):
        state = state[entry]
    elif entry != "model":
        held = sorted(k for k, v in state.items() if isinstance(v, Mapping)) if isinstance(state, Mapping) else []
        raise BundleInputError(f"--{key} {path} has no '{entry}' entry (it holds {held or 'a bare state dict'}).")
    if not isinstance(state, Mapping) or not state or not all(hasattr(v, "shape") for v in state.values()):
        raise BundleInputError(f"--{key} {path} holds no network state dict (a dict of tensors, or one under 'model').")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def unet2015_args_from_state_dict(state: Mapping[str, Any]) -> dict:
    """``spatial_dims``, ``in_channels``, ``out_channels`` and ``features`` of the UNet2015 a state dict is from.

    Read from the tensor shapes, so that a bare state dict can be loaded without knowing its width.

    Examples::

        >>> from monai_unet2015.networks.nets import UNet2015
        >>> unet2015_args_from_state_dict(UNet2015(features=(4, 8, 16), out_channels=3).state_dict())
        {'spatial_dims': 2, 'in_channels': 1, 'out_channels': 3, 'features': [4, 8, 16]}
    """
    first, final = state.get("conv_0.conv_0.conv.weight"), state.get("final_conv.weight")
    if first is None or final is None:
        raise BundleInputError(
            "the state dict is not a UNet2015's: it lacks 'conv_0.conv_0.conv.weight' / 'final_conv.weight'."
        )
    levels = sorted((int(m.group(1)), v) for k, v in state.items() if (m := _LEVEL.match(k)))
    return {
        "spatial_dims": len(first.shape) - 2,
        "in_channels": int(first.shape[1]),
        "out_channels": int(final.shape[0]),
        "features": [int(first.shape[0])] + [int(v.shape[0]) for _, v in levels],
    }


def check_checkpoint(
    path: str | Path, features: Sequence[int], in_channels: int = 1, out_channels: int = 2, key: str = "ckpt_path"
) -> bool:
    """Check, before any work starts, that ``path`` holds UNet2015 weights of the width the config builds.

    Returns ``True``; raises :py:class:`~monai_unet2015.bundle.errors.BundleInputError` naming the file and
    the fix (the ``--features`` that match it, or another ``--<key>``) otherwise.
    """
    return check_width(read_state_dict(path, key), path, features, in_channels, out_channels, key)


def check_width(
    state: Mapping[str, Any], path: str | Path, features: Sequence[int], in_channels: int = 1, out_channels: int = 2,
    key: str = "ckpt_path",
) -> bool:
    """:py:func:`check_checkpoint` of the state dict already read from ``path``."""
    got = unet2015_args_from_state_dict(state)
    want = {"features": [int(f) for f in features], "in_channels": int(in_channels), "out_channels": int(out_channels)}
    diff = {k: (got[k], v) for k, v in want.items() if got[k] != v}
    if diff:
        said = ", ".join(f"{k} {g} (the config says {w})" for k, (g, w) in diff.items())
        fix = f" pass --features \"{got['features']}\"" if "features" in diff else " use a matching checkpoint"
        raise BundleInputError(f"--{key} {path} holds a UNet2015 with {said}:{fix}, or another --{key}.")
    return True


def export_weights(
    checkpoint: str | Path | Sequence[str | Path], path: str | Path, dtype: str = "float16", overwrite: bool = False,
    entry: str | Sequence[str] = "model",
) -> dict[str, Any]:
    """Write the network weights of a training ``checkpoint`` as the bare state dict a bundle ships.

    ``checkpoint`` is any file :py:func:`read_state_dict` reads: a run's ``checkpoints/checkpoint_final.pt``
    (the weights at the end of its learning-rate schedule) or its ``model.pt``; or a list of such files, whose
    weights are averaged (the uniform mean of each tensor, as in stochastic weight averaging over the last
    checkpoints of a run: :py:func:`average_weights`). ``entry`` ``"ema_model"`` takes the weight average of a
    training with ``ema_momentum`` instead of its final weights; for a list, one entry for all files or one per
    file (e.g. the mean of shipped weights and a run's EMA). Floating-point tensors are
    stored as ``dtype`` (``"float16"`` halves the file; the bundles' float32 networks load it as is), other
    tensors as they are. An existing ``path`` is kept unless ``overwrite``: shipped weights are replaced on purpose
    only.

    Returns the UNet2015 arguments the weights are for (:py:func:`unet2015_args_from_state_dict`).

    Examples::

        >>> import tempfile, torch
        >>> from monai_unet2015.networks.nets import UNet2015
        >>> d = tempfile.mkdtemp()
        >>> net = UNet2015(features=(4, 8, 16))
        >>> torch.save({"model": net.state_dict(), "optimizer": {}}, f"{d}/checkpoint_final.pt")
        >>> export_weights(f"{d}/checkpoint_final.pt", f"{d}/model.pt")["features"]
        [4, 8, 16]
        >>> state = torch.load(f"{d}/model.pt", weights_only=True)
        >>> {v.dtype for v in state.values()}, net.load_state_dict(state) is not None
        ({torch.float16}, True)
    """
    import torch
    from monai.utils import look_up_option

    cast = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    target = cast[look_up_option(str(dtype).replace("torch.", ""), tuple(cast))]
    out = Path(path)
    if out.exists() and not overwrite:
        raise BundleInputError(f"{out} exists: pass overwrite=True to replace it (it is kept as it is).")
    if isinstance(checkpoint, (str, Path)):
        if not isinstance(entry, str):
            raise BundleInputError(f"entry must be one name ('model' or 'ema_model') for one file, got {entry!r}.")
        state = read_state_dict(checkpoint, key="checkpoint", entry=entry)
    else:
        state = average_weights(checkpoint, entry=entry)
    args = unet2015_args_from_state_dict(state)
    state = {k: v.to(target) if v.is_floating_point() else v for k, v in state.items()}
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise BundleInputError(f"{checkpoint}: weights not finite in {target} (overflow), not written.")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    return args


def average_weights(checkpoints: Sequence[str | Path], entry: str | Sequence[str] = "model") -> dict:
    """The uniform mean of the network weights in ``checkpoints`` (files :py:func:`read_state_dict` reads).

    ``entry`` is the checkpoint entry read from every file (``"model"``: the weights, ``"ema_model"``: their EMA),
    or a sequence of one entry per file.

    Averaging the weights of the last checkpoints of one run (stochastic weight averaging) smooths the noise of
    the final iterations without choosing one checkpoint by a validation score. Floating-point tensors are
    averaged in float64 and returned in the dtype of the first checkpoint; other tensors (counters) are taken from
    the last one. UNet2015 has no batch normalisation, so no running statistics need recomputing.

    Examples::

        >>> import tempfile, torch
        >>> d = tempfile.mkdtemp()
        >>> for i, w in enumerate((1.0, 2.0, 6.0)):
        ...     torch.save({"model": {"w": torch.full((2,), w)}}, f"{d}/checkpoint_epoch={i}.pt")
        >>> average_weights([f"{d}/checkpoint_epoch={i}.pt" for i in range(3)])["w"]
        tensor([3., 3.])
    """
    import torch

    paths = list(checkpoints)
    if not paths:
        raise BundleInputError("checkpoints is empty: give the checkpoint files whose weights to average.")
    entries = [entry] * len(paths) if isinstance(entry, str) else list(entry)
    if len(entries) != len(paths) or not all(isinstance(e, str) for e in entries):
        raise BundleInputError(f"entry must be one name or one name per checkpoint ({len(paths)}), got {entry!r}.")
    states = [read_state_dict(p, key="checkpoint", entry=e) for p, e in zip(paths, entries)]
    first = states[0]
    for p, state in zip(paths[1:], states[1:]):
        if state.keys() != first.keys() or any(state[k].shape != first[k].shape for k in first):
            raise BundleInputError(f"{p} holds another network than {paths[0]}: only weights of one network average.")
    return {
        k: torch.stack([s[k].double() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else states[-1][k]
        for k, v in first.items()
    }

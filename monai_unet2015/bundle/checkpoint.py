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

"""Find the checkpoint a killed training run resumes from."""

from __future__ import annotations

from pathlib import Path

__all__ = ["latest_checkpoint"]


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

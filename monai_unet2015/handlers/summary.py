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

"""The last line of a bundle's inference: how many images were segmented and where the results went."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from monai.utils import min_version, optional_import

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")

__all__ = ["InferenceSummary"]


def _snapshot(folder: Path) -> dict[str, int]:
    if not folder.is_dir():
        return {}
    return {e.path: e.stat().st_mtime_ns for e in os.scandir(folder) if e.is_file()}


class InferenceSummary:
    """
    Log, when an inference run completes, the number of images segmented (a stack counts once) and the
    files written to ``output_dir`` (new or rewritten during the run), e.g.
    ``Segmented 1 image (512x512): wrote 3 files to /abs/eval (isbi2012_test_00_prob.tif, ...)``.

    Args:
        output_dir: the folder the run writes to.
        name: logger name (the bundles' ``StatsHandler`` uses ``"StatsHandler"``, so both land in one log).

    Examples::

        >>> from ignite.engine import Engine
        >>> import tempfile
        >>> handler = InferenceSummary(tempfile.mkdtemp())
        >>> engine = Engine(lambda e, b: b)
        >>> handler.attach(engine)
        >>> _ = engine.run([1, 2], max_epochs=1)
        >>> handler.summary
        'Segmented 0 images: wrote no file to ...'
    """

    def __init__(self, output_dir: str | Path, name: str = "StatsHandler") -> None:
        self.output_dir = Path(output_dir)
        self.logger = logging.getLogger(name)
        self._before: dict[str, int] = {}
        self._images: set[str] = set()
        self.summary = ""

    def attach(self, engine: Any) -> None:
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def _started(self, engine: Any) -> None:
        self._before, self._images = _snapshot(self.output_dir), set()

    def _iteration(self, engine: Any) -> None:
        batch = getattr(engine.state, "batch", None)  # a dict, or a list of dicts once MONAI decollated it
        for item in batch if isinstance(batch, (list, tuple)) else [batch]:
            image = item.get("image") if isinstance(item, dict) else None
            names = getattr(image, "meta", {}).get("filename_or_obj") if image is not None else None
            if names is not None:
                self._images.update(map(str, names if isinstance(names, (list, tuple)) else [names]))

    def _completed(self, engine: Any) -> None:
        after = _snapshot(self.output_dir)
        written = sorted(Path(p).name for p, t in after.items() if self._before.get(p) != t)
        n = len(self._images)
        images = f"{n} image{'s' if n != 1 else ''}"
        if written:
            shown = ", ".join(written[:4]) + (", ..." if len(written) > 4 else "")
            files = f"wrote {len(written)} file{'s' if len(written) != 1 else ''} to {self.output_dir.resolve()} ({shown})"
        else:
            files = f"wrote no file to {self.output_dir.resolve()}"
        self.summary = f"Segmented {images}: {files}"
        self.logger.info(self.summary)

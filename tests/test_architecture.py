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

"""What each folder of the package may import (docs/architecture.md), checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "monai_unet2015"

#: the package folders each folder may import (besides itself); docs/architecture.md says why
ALLOWED = {
    "networks": {"inferers"},  # UNet2015.tiling_geometry() builds an inferers.geometry object, lazily
    "losses": {"networks"},  # the valid-padding network's centre crop (as MONAI's losses use monai.networks)
    "metrics": {"transforms"},  # instances: relabelling, connectivity (as MONAI's metrics use monai.transforms)
    "engines": set(),
    "transforms": {"networks"},
    "inferers": {"networks", "transforms", "data"},  # the out-of-core job reads and writes zarr (data.zarr_io)
    "handlers": {"metrics"},
    "data": {"bundle", "transforms"},
    "bundle": {"networks", "data", "inferers", "transforms", "metrics", "handlers", "losses", "engines"},
}


def _imported_folders(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PACKAGE).parts
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[:-1])[: len(rel) - node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
                if not name.startswith("monai_unet2015"):
                    continue
                name = name[len("monai_unet2015."):]
        elif isinstance(node, ast.Import):
            names = [a.name[len("monai_unet2015."):] for a in node.names if a.name.startswith("monai_unet2015.")]
            out.update(n.split(".")[0] for n in names)
            continue
        else:
            continue
        if name:
            out.add(name.split(".")[0])
    return out


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_folder_imports(folder):
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        extra = _imported_folders(path) - {folder} - ALLOWED[folder]
        assert not extra, f"{path.relative_to(PACKAGE)} imports {sorted(extra)}; allowed: {sorted(ALLOWED[folder])}"

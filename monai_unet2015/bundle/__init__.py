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

"""Helpers for the MONAI bundles in ``bundles/``: checkpoint lookup for resuming, release packaging, the pieces of
out-of-core inference (``inference_large.json``), scoring candidate weights on a bundle's validation or test split."""

from __future__ import annotations

from .checkpoint import *  # noqa: F401,F403
from .errors import *  # noqa: F401,F403
from .evaluation import *  # noqa: F401,F403
from .options import *  # noqa: F401,F403
from .training import *  # noqa: F401,F403

# ``package`` is also a command line (``python -m monai_unet2015.bundle.package``): importing it here would make
# runpy warn that it is already in sys.modules, so its public functions are loaded on first access instead;
# ``large`` needs torch, which the rest of this package does not import.
_LAZY = {
    "ReverseIndexedNetwork": ".large",
    "ReverseIndexedTransform": ".large",
    "check_large_inputs": ".large",
    "whole_slice_chunks": ".large",
    "package_bundle": ".package",
    "bundle_files": ".package",
    "select_bundle_files": ".package",
    "sha256sum": ".package",
}


def __getattr__(name: str) -> object:  # PEP 562: module attributes loaded on first access
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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

"""Instance labels: connected components of a binary mask, or renumbered ids of an instance label map; clean-up
(objects below a size removed, holes filled, :py:mod:`.cleanup`); touching cells split by a watershed
(:py:mod:`.watershed`).

Also the package's one home of relabelling (:py:mod:`.relabel`) and of the ``connectivity`` check
(:py:mod:`.connectivity`), which the weight map and the metrics use too.
"""

from __future__ import annotations

from .array import LabelInstances
from .cleanup import *  # noqa: F401,F403
from .cleanup import __all__ as _cleanup_all
from .dictionary import LabelInstancesD, LabelInstancesd, LabelInstancesDict
from .functional import label_instances
from .relabel import relabel_sequential

__all__ = [
    *_cleanup_all,
    "LabelInstances",
    "LabelInstancesd",
    "LabelInstancesD",
    "LabelInstancesDict",
    "label_instances",
    "relabel_sequential",
]

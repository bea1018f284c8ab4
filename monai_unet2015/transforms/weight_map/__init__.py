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

"""The U-Net weight map (paper Eq. 2) and separation borders between touching instances (paper Fig. 3c)."""

from __future__ import annotations

from ..instances.functional import label_instances  # re-export; home: monai_unet2015.transforms.instances
from .array import UNetWeightMap
from .dictionary import UNetWeightMapD, UNetWeightMapd, UNetWeightMapDict
from .functional import (
    carve_borders,
    class_balance_weights,
    separation_border_radius,
    separation_border_term,
    unet_weight_map,
)

__all__ = [
    "UNetWeightMap",
    "UNetWeightMapd",
    "UNetWeightMapD",
    "UNetWeightMapDict",
    "carve_borders",
    "class_balance_weights",
    "label_instances",
    "separation_border_radius",
    "separation_border_term",
    "unet_weight_map",
]

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

"""The U-Net paper's elastic deformation (coarse random displacement grid, cubic B-spline interpolation)."""

from __future__ import annotations

from . import dictionary
from .array import GridElastic, RandGridElastic, as_coarse_displacement, elastic_sigma_in_pixels
from .dictionary import *  # noqa: F401,F403  (the dictionary transforms and their D / Dict aliases)
from .functional import (
    ELASTIC_MODES,
    ELASTIC_PADDING_MODES,
    bspline_upsampling_matrix,
    coarse_sampling_grid,
    dense_displacement,
    grid_elastic,
    grid_elastic_inverse,
    invert_displacement,
    sampling_grid,
    spline_prefilter,
    warp,
)

__all__ = [
    "GridElastic",
    "RandGridElastic",
    *dictionary.__all__,
    "ELASTIC_MODES",
    "ELASTIC_PADDING_MODES",
    "as_coarse_displacement",
    "elastic_sigma_in_pixels",
    "bspline_upsampling_matrix",
    "coarse_sampling_grid",
    "dense_displacement",
    "grid_elastic",
    "grid_elastic_inverse",
    "invert_displacement",
    "sampling_grid",
    "spline_prefilter",
    "warp",
]

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

"""Resampling engine in pure torch: cubic B-spline interpolation, threaded ``grid_sample``, field inversion.

The machinery under the paper's elastic deformation (:py:mod:`monai_unet2015.transforms.elastic`), usable on
its own for any displacement field:

- :py:mod:`.bspline`: ``bspline_upsampling_matrix`` (coarse grid to pixels, ``scipy.ndimage.zoom(order=3)``),
  ``spline_prefilter`` (``scipy.ndimage.spline_filter``) and ``bspline_resample``
  (``scipy.ndimage.map_coordinates(order=3)``);
- :py:mod:`.grid`: ``sampling_grid`` (dense field to ``grid_sample`` grid) and ``coarse_sampling_grid`` (the same
  for a coarse grid's B-spline interpolant, one matrix product);
- :py:mod:`.grid_sample`: ``threaded_grid_sample`` (``grid_sample`` on all CPU threads for one image);
- :py:mod:`.warping`: ``warp`` / ``warp_lazy`` (several images, one field, one call per mode group) and the mode
  look-ups;
- :py:mod:`.inverse`: ``invert_displacement`` (fixed-point inverse of a smooth field).
"""

from __future__ import annotations

from .bspline import bspline_resample, bspline_upsampling_matrix, spline_prefilter
from .grid import coarse_sampling_grid, sampling_grid
from .grid_sample import RESAMPLE_PADDING_MODES, threaded_grid_sample
from .inverse import invert_displacement
from .warping import RESAMPLE_MODES, look_up_resample_mode, look_up_resample_padding_mode, warp, warp_lazy

__all__ = [
    "RESAMPLE_MODES",
    "RESAMPLE_PADDING_MODES",
    "bspline_resample",
    "bspline_upsampling_matrix",
    "coarse_sampling_grid",
    "invert_displacement",
    "look_up_resample_mode",
    "look_up_resample_padding_mode",
    "sampling_grid",
    "spline_prefilter",
    "threaded_grid_sample",
    "warp",
    "warp_lazy",
]

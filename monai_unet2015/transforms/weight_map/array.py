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

"""Array transform for the U-Net weight map and the separation borders between touching instances."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from monai.config import NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms.transform import Transform
from monai.utils import TransformBackends, convert_data_type, convert_to_dst_type
from monai.utils.misc import issequenceiterable

from ..instances.connectivity import check_connectivity
from .functional import (
    _as_label_array,
    _check_class_weights,
    _check_term,
    _look_up_label_type,
    _resolve_label_type,
    _spacing_tuple,
    _unet_weight_map,
)

__all__ = ["UNetWeightMap"]


class UNetWeightMap(Transform):
    """The weight map of the U-Net paper and the binary training target with separation borders.

    Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
    MICCAI 2015, Eq. 2 and Fig. 3: touching instances are separated by background borders (Fig. 3c), and every
    pixel gets the weight

    ``w(x) = wc(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))``

    where ``wc`` balances the class frequencies and ``d1``, ``d2`` are the Euclidean distances from ``x`` to
    the nearest pixel of the nearest and of the second-nearest instance. Exact semantics:

    - Instances: every distinct positive id of an instance label map, or the connected components of a binary
      mask (``label_type``; ``"auto"`` treats an image with a single non-zero value, e.g. a 0/1 or 0/255 mask,
      as binary).
    - Separation borders (``carve=True``): every instance pixel that has a pixel of a *different* instance in its
      neighbourhood (``connectivity``: ``None`` = full, 8-neighbourhood in 2D, 26 in 3D; 1 = faces only)
      becomes background. Both sides are carved, so two instances that share an edge are separated by a
      two-pixel border.
    - Target: 1 on the (carved) instances, 0 on the background including the borders.
    - ``wc``: ``"balanced"`` (default): ``n / (K * n_k)`` for class ``k`` of the target (``n`` pixels, ``n_k`` of
      class ``k``, ``K`` classes present), so that the mean weight is 1; ``None``: 1; or fixed weights
      ``(w_background, w_foreground)``.
    - The exponential term is added on background pixels only (borders included); ``d1``, ``d2`` are measured
      to the carved instances, in pixels or, with ``spacing``, in physical units (then ``sigma`` is physical
      too). With fewer than two instances there is no border term.
    - It is computed to an absolute tolerance ``tol`` (default ``1e-4``) of the exact value, at a cost that
      grows with the number of pixels, not pixels x instances (see
      :py:func:`~monai_unet2015.transforms.weight_map.functional.separation_border_term`).

    The input is a channel-first label image with one channel, ``(1, H, W)`` or ``(1, D, H, W)``; NumPy arrays,
    tensors and MetaTensors are accepted and the outputs have the input's type and device (the weight map
    float32, the target the input's dtype) and carry its metadata: a MetaTensor gives MetaTensors. The
    computation runs in NumPy/SciPy on the CPU (``backend = [TransformBackends.NUMPY]``): a tensor is converted
    to NumPy and the results back to the input's type.

    Args:
        w0: amplitude of the separation term (paper: 10).
        sigma: width of the separation term (paper: 5 pixels), in the units of ``spacing``.
        class_weights: ``"balanced"``, ``None`` or a pair ``(w_background, w_foreground)``.
        spacing: ``None`` (distances in pixels), a number or one number per spatial axis, or ``"meta"`` to read
            the pixel spacing of a MetaTensor input (``pixdim``).
        carve: insert separation borders between touching instances.
        connectivity: neighbourhood for "touching" and for connected components; ``None`` = full.
        label_type: ``"auto"``, ``"instance"`` or ``"binary"``.
        tol: absolute tolerance of the separation term, ``> 0`` (``1e-9`` is exact to float32 precision and
            costs about 1.5-2x the default).
        return_target: return ``(weight, target)`` (default) or the weight map alone.

    Raises:
        ValueError: bad arguments; labels with non-integer or negative values, a shape other than
            ``(1, H, W)`` / ``(1, D, H, W)``, or an empty image.

    Examples::

        >>> import numpy as np
        >>> from monai_unet2015.transforms import UNetWeightMap
        >>> label = np.zeros((1, 8, 8), np.int32)
        >>> label[0, 2:6, 1:4], label[0, 2:6, 4:7] = 1, 2  # two touching squares
        >>> weight, target = UNetWeightMap(class_weights=None)(label)
        >>> target[0, 3].tolist()  # separation border carved at columns 3 and 4
        [0, 1, 1, 0, 0, 1, 1, 0]
        >>> round(float(weight[0, 3, 3]), 4)  # 1 + 10 * exp(-(1 + 2)**2 / (2 * 5**2))
        9.3527
    """

    backend = [TransformBackends.NUMPY]

    def __init__(
        self,
        w0: float = 10.0,
        sigma: float = 5.0,
        class_weights: str | Sequence[float] | None = "balanced",
        spacing: Sequence[float] | float | str | None = None,
        carve: bool = True,
        connectivity: int | None = None,
        label_type: str = "auto",
        tol: float = 1e-4,
        return_target: bool = True,
    ) -> None:
        self.w0, self.sigma, self.tol = _check_term(w0, sigma, tol)
        self.class_weights = _check_class_weights(class_weights)
        if isinstance(spacing, str):
            if spacing != "meta":
                raise ValueError(f"spacing must be None, a number, a sequence of numbers or 'meta', got {spacing!r}.")
        elif spacing is not None:  # the values now, their number once the image is seen
            values = _spacing_tuple(spacing, None)
            spacing = values if issequenceiterable(spacing) else values[0]
        self.spacing = spacing
        self.label_type = _look_up_label_type(label_type)
        self.connectivity = check_connectivity(connectivity)  # the range once the image is seen
        self.carve = bool(carve)
        self.return_target = bool(return_target)

    def _spacing_for(self, label: NdarrayOrTensor, ndim: int) -> tuple[float, ...]:
        if isinstance(self.spacing, str):  # "meta"
            if not isinstance(label, MetaTensor):
                raise ValueError(
                    f"spacing='meta' needs a MetaTensor label with an affine, got {type(label).__name__}; "
                    "pass the spacing explicitly instead."
                )
            pixdim = np.asarray(label.pixdim, dtype=np.float64).reshape(-1)[:ndim]
            return _spacing_tuple(tuple(pixdim), ndim)
        return _spacing_tuple(self.spacing, ndim)

    def __call__(self, label: NdarrayOrTensor) -> tuple[NdarrayOrTensor, NdarrayOrTensor] | NdarrayOrTensor:
        """
        Args:
            label: channel-first label image ``(1, H, W)`` or ``(1, D, H, W)``: instance ids (0 = background) or
                a binary mask.

        Returns:
            ``(weight, target)``: the float32 weight map and the binary target with separation borders, both of
            shape and type of ``label`` (only ``weight`` when ``return_target=False``).
        """
        shape = tuple(label.shape)
        if len(shape) not in (3, 4) or shape[0] != 1:
            raise ValueError(
                "UNetWeightMap expects a channel-first label with one channel, (1, H, W) or (1, D, H, W), "
                f"got shape {shape}."
            )
        if any(s == 0 for s in shape):
            raise ValueError(f"UNetWeightMap got an empty label image of shape {shape}.")
        ndim = len(shape) - 1
        connectivity = check_connectivity(self.connectivity, ndim)
        spacing = self._spacing_for(label, ndim)
        label_np = _as_label_array(convert_data_type(label, np.ndarray)[0][0])
        label_type = _resolve_label_type(label_np, self.label_type)
        weight, target = _unet_weight_map(
            label_np, self.w0, self.sigma, self.class_weights, spacing, self.carve, connectivity, label_type, self.tol
        )
        float_dtype = torch.float32 if isinstance(label, torch.Tensor) else np.float32
        weight_out = convert_to_dst_type(weight[None], dst=label, dtype=float_dtype)[0]
        if not self.return_target:
            return weight_out
        target_out = convert_to_dst_type(target[None], dst=label)[0]
        return weight_out, target_out

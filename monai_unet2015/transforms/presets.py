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

"""The U-Net paper's training augmentation as a ready MONAI ``Compose`` (Ronneberger et al. 2015, section 3.1).

"In case of microscopical images we primarily need shift and rotation invariance as well as robustness to
deformations and gray value variations. Especially random elastic deformations of the training samples seem to
be the key concept to train a segmentation network with very few annotated images."
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from monai.config import KeysCollection
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSpatialCropd,
    SpatialPadd,
)
from monai.utils import ensure_tuple, ensure_tuple_rep

from .elastic import RandGridElasticd
from .elastic.functional import look_up_elastic_mode, look_up_elastic_padding_mode

__all__ = ["unet2015_train_augmentation"]


def _keys(value: KeysCollection | None) -> tuple:
    return () if value is None else tuple(ensure_tuple(value))


def unet2015_train_augmentation(
    image_keys: KeysCollection = "image",
    label_keys: KeysCollection | None = "label",
    weight_keys: KeysCollection | None = None,
    spatial_dims: int = 2,
    *,
    elastic_sigma: float | Sequence[float] = 10.0,
    elastic_grid_size: int | Sequence[int] = 3,
    elastic_prob: float = 1.0,
    spacing: float | Sequence[float] | None = None,
    rotate_range: float | Sequence[float] | None = None,
    shift_range: float | Sequence[float] = 20.0,
    scale_range: float | Sequence[float] = 0.0,
    affine_prob: float = 1.0,
    flip_prob: float = 0.0,
    intensity_prob: float = 0.5,
    scale_intensity: float = 0.1,
    shift_intensity: float = 0.1,
    gamma: tuple[float, float] | None = (0.7, 1.4),
    image_mode: str | int = "bilinear",
    padding_mode: str = "reflection",
    crop_size: Sequence[int] | int | None = None,
    device: torch.device | str | None = None,
) -> Compose:
    """The paper's augmentation (elastic deformation, shift, rotation, gray-value variation) as a MONAI ``Compose``.

    In order:

    1. :py:class:`RandGridElasticd` - the paper's elastic deformation: a 3 x 3 (x 3) grid corner to corner,
       node displacements ~ N(0, ``elastic_sigma``), cubic B-spline interpolation; one field for all keys.
    2. ``RandAffined`` - rotation (uniform in ``+-rotate_range`` radians; default a full turn in 2D, in-plane only
       in 3D), shift (uniform in ``+-shift_range`` pixels) and, with ``scale_range``, scaling (each axis by
       ``1 + U(+-scale_range)``, drawn per axis as MONAI's ``RandAffine`` does; not in the paper), one resampling
       for all.
    3. ``RandFlipd`` along every spatial axis with ``flip_prob`` (off by default; not in the paper).
    4. Gray-value variation on the image keys only: ``RandScaleIntensityd`` (``x * (1 + U(+-scale_intensity))``),
       ``RandShiftIntensityd`` (``x + U(+-shift_intensity)``) and ``RandAdjustContrastd`` (gamma in ``gamma``), each
       with ``intensity_prob``. The paper does not give the amounts; the defaults assume intensities in [0, 1].
    5. With ``crop_size``: ``SpatialPadd`` (mirror, only if the image is smaller) and ``RandSpatialCropd`` to a
       network input tile (e.g. 572 x 572, see ``UNet2015.valid_input_sizes``), all keys alike.

    How each key is interpolated (the elastic and the affine step use the same rule, padding ``padding_mode``,
    mirror by default):

    - ``image_keys``: ``image_mode`` (``"bilinear"`` by default, ``"bicubic"`` in 2D, or ``3`` for a cubic
      B-spline); the only keys that get the gray-value variation.
    - ``label_keys``: ``"nearest"``, so no new label values appear (instance ids survive).
    - ``weight_keys``: ``"bilinear"``, so a weight map stays within its original range (a cubic kernel would
      overshoot).

    With ``image_mode=3`` the elastic step uses this package's cubic B-spline and ``RandAffined`` MONAI's spline
    backend (SciPy on CPU, slower).

    Args:
        image_keys: image keys (intensity augmentation applies to these only).
        label_keys: label keys (nearest neighbour), or None.
        weight_keys: weight-map keys (bilinear), or None, e.g. the output of ``UNetWeightMapd``.
        spatial_dims: 2 or 3.
        elastic_sigma: node displacement std (pixels, or physical units with ``spacing``); 0 disables the step.
        elastic_grid_size: grid nodes per axis.
        elastic_prob: probability of the elastic deformation (the paper deforms every sample).
        spacing: pixel size per axis for a physical ``elastic_sigma``.
        rotate_range: max rotation in radians; None: ``pi`` in 2D, ``(pi, 0, 0)`` (in-plane, about the first
            axis) in 3D; 0 disables rotation.
        shift_range: max shift in pixels per axis; 0 disables shifting.
        scale_range: max relative scaling per axis (0.2: factors in [0.8, 1.2]); 0 (default) disables scaling.
        affine_prob: probability of the rotation + shift.
        flip_prob: probability of a flip along each axis.
        intensity_prob: probability of each gray-value transform; 0 disables them.
        scale_intensity: relative intensity scaling range.
        shift_intensity: additive intensity offset range.
        gamma: gamma range, or None to skip.
        image_mode: interpolation of the image keys: ``"bilinear"``, ``"bicubic"`` (2D) or ``3`` (cubic B-spline).
        padding_mode: ``"reflection"`` (default), ``"border"`` or ``"zeros"``.
        crop_size: random crop size (int or per axis), or None for no crop.
        device: device of the spatial transforms (default: the data's device).

    Examples::

        >>> import torch
        >>> aug = unet2015_train_augmentation("image", "label", "weight", crop_size=92)
        >>> _ = aug.set_random_state(seed=0)
        >>> out = aug({"image": torch.rand(1, 80, 80), "label": torch.randint(0, 2, (1, 80, 80)),
        ...            "weight": torch.rand(1, 80, 80) + 1})
        >>> tuple(out["image"].shape), set(out["label"].unique().tolist()) <= {0, 1}
        ((1, 92, 92), True)
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    images, labels, weights = _keys(image_keys), _keys(label_keys), _keys(weight_keys)
    if not images:
        raise ValueError("image_keys must name at least one key.")
    all_keys = images + labels + weights
    if len(set(all_keys)) != len(all_keys):
        raise ValueError(f"a key may be only one of image/label/weight keys, got {images}, {labels}, {weights}.")
    image_mode = look_up_elastic_mode(image_mode, spatial_dims)
    look_up_elastic_padding_mode(padding_mode)
    for name, p in (("elastic_prob", elastic_prob), ("affine_prob", affine_prob), ("flip_prob", flip_prob),
                    ("intensity_prob", intensity_prob)):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p!r}.")
    modes = (image_mode,) * len(images) + ("nearest",) * len(labels) + ("bilinear",) * len(weights)
    transforms: list = []

    sig = ensure_tuple(elastic_sigma)
    if elastic_prob > 0 and any(float(s) > 0 for s in sig):
        transforms.append(
            RandGridElasticd(
                all_keys, sigma=elastic_sigma, grid_size=elastic_grid_size, spacing=spacing, prob=elastic_prob,
                mode=modes, padding_mode=padding_mode, device=device,
            )
        )

    if rotate_range is None:
        rotate_range = math.pi if spatial_dims == 2 else (math.pi, 0.0, 0.0)
    rotating = any(float(r) != 0 for r in ensure_tuple(rotate_range))
    shifting = any(float(s) != 0 for s in ensure_tuple(shift_range))
    scaling = any(float(s) != 0 for s in ensure_tuple(scale_range))
    if scaling and not all(0 <= float(s) < 1 for s in ensure_tuple(scale_range)):
        raise ValueError(f"scale_range must be in [0, 1) per axis (factors 1 +- scale_range), got {scale_range!r}.")
    if affine_prob > 0 and (rotating or shifting or scaling):
        shift = ensure_tuple(shift_range)
        transforms.append(
            RandAffined(
                all_keys, prob=affine_prob,
                rotate_range=rotate_range if rotating else None,
                translate_range=(shift * spatial_dims if len(shift) == 1 else shift) if shifting else None,
                scale_range=ensure_tuple_rep(scale_range, spatial_dims) if scaling else None,
                mode=modes, padding_mode=padding_mode, device=device,
            )
        )

    if flip_prob > 0:
        transforms.extend(RandFlipd(all_keys, prob=flip_prob, spatial_axis=a) for a in range(spatial_dims))

    if intensity_prob > 0:
        if scale_intensity:
            transforms.append(RandScaleIntensityd(images, factors=scale_intensity, prob=intensity_prob))
        if shift_intensity:
            transforms.append(RandShiftIntensityd(images, offsets=shift_intensity, prob=intensity_prob))
        if gamma is not None:
            transforms.append(RandAdjustContrastd(images, gamma=gamma, prob=intensity_prob))

    if crop_size is not None:
        transforms.append(SpatialPadd(all_keys, spatial_size=crop_size, mode="reflect"))
        transforms.append(RandSpatialCropd(all_keys, roi_size=crop_size, random_size=False))
    return Compose(transforms)

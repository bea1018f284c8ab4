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

"""Instance ids from a binary mask (connected components) or from an instance label map (renumbering).

Plain NumPy arrays holding the *spatial* axes only (no channel axis), 2D or 3D (any number of axes works);
:py:class:`~monai_unet2015.transforms.instances.array.LabelInstances` adds the channel axis and MetaTensor
handling. Connected components come from ``scipy.ndimage.label`` with the neighbourhood of
``scipy.ndimage.generate_binary_structure`` (``connectivity`` 1 = faces only, as
``skimage.measure.label(connectivity=1)``; ``ndim`` or ``None`` = full; checked by
:py:func:`~monai_unet2015.transforms.instances.connectivity.check_connectivity`); renumbering to ``1..N`` keeps
the order of the ids, as ``skimage.segmentation.relabel_sequential``
(:py:mod:`~monai_unet2015.transforms.instances.relabel`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from monai.utils import look_up_option

from .connectivity import check_connectivity
from .relabel import _relabel_consecutive

__all__ = ["label_instances"]

_LABEL_TYPES = ("auto", "instance", "binary")


def _look_up_label_type(label_type: str) -> str:
    """``label_type`` checked with ``monai.utils.look_up_option``, the error naming the argument."""
    try:
        return look_up_option(label_type, _LABEL_TYPES)
    except ValueError:
        raise ValueError(f"label_type must be one of {_LABEL_TYPES}, got {label_type!r}.") from None


def label_instances(
    labels: np.ndarray, label_type: str = "auto", connectivity: int | None = None
) -> tuple[np.ndarray, int]:
    """Instance ids ``1..N`` (int32, background 0) and ``N`` from an instance label map or a binary mask.

    Args:
        labels: spatial array of non-negative integers (any integer or bool dtype; integral floats are accepted).
        label_type: ``"instance"``: every distinct positive value is one instance, whether connected or not.
            ``"binary"``: every non-zero pixel is foreground and instances are its connected components.
            ``"auto"`` (default): ``"binary"`` when the array holds at most one distinct non-zero value
            (e.g. 0/1 or 0/255 masks such as the ISBI 2012 labels), ``"instance"`` otherwise.
        connectivity: neighbourhood for connected components, as in
            ``scipy.ndimage.generate_binary_structure``: 1 = faces only (4-/6-neighbourhood), ``ndim`` or ``None``
            (default) = full (8-/26-neighbourhood).

    Returns:
        ``(instances, n)``: int32 instance ids ``1..N`` with the shape of ``labels`` (0 = background; connected
        components numbered in raster order, instance values renumbered in increasing order), and ``N``.

    Raises:
        ValueError: on a bad ``label_type`` or ``connectivity``, negative or non-integral values, an empty array.
        TypeError: on a non-numeric dtype.

    Examples::

        >>> import numpy as np
        >>> mask = np.array([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
        >>> label_instances(mask, "binary", connectivity=1)[0].tolist()  # faces only: three components
        [[1, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 3]]
        >>> label_instances(mask, "binary")[1]  # full neighbourhood: the diagonal pixels join
        1
        >>> label_instances(np.array([[0, 7, 7, 0, 3]]))  # several values: "auto" reads instance ids
        (array([[0, 2, 2, 0, 1]], dtype=int32), 2)
    """
    label_type = _look_up_label_type(label_type)
    labels = _as_label_array(labels)
    label_type = _resolve_label_type(labels, label_type)
    if label_type == "binary":
        connectivity = check_connectivity(connectivity, labels.ndim)
    return _label_instances(labels, label_type, connectivity)


def _resolve_label_type(labels: np.ndarray, label_type: str) -> str:
    """``"auto"`` resolved for ``labels``: ``"binary"`` with at most one distinct non-zero value."""
    if label_type != "auto":
        return label_type
    nonzero = labels[labels != 0]
    single = nonzero.size == 0 or bool(np.all(nonzero == nonzero.flat[0]))
    return "binary" if single else "instance"


def _label_instances(labels: np.ndarray, label_type: str, connectivity: int | None) -> tuple[np.ndarray, int]:
    """:py:func:`label_instances` of checked arguments: ``labels`` from :py:func:`_as_label_array`, ``label_type``
    looked up, ``connectivity`` an int in ``[1, labels.ndim]`` (used for ``"binary"`` only)."""
    label_type = _resolve_label_type(labels, label_type)
    if label_type == "binary":
        structure = ndi.generate_binary_structure(labels.ndim, connectivity)
        comp, n = ndi.label(labels != 0, structure=structure, output=np.int32)
        return comp, int(n)
    return _relabel_consecutive(labels)


def _as_label_array(labels: np.ndarray) -> np.ndarray:
    """Validate an integer-valued, non-negative label array and return it with an integer dtype."""
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ValueError(f"labels must not be empty, got an array of shape {labels.shape}.")
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if np.issubdtype(labels.dtype, np.complexfloating) or not np.issubdtype(labels.dtype, np.number):
        raise TypeError(f"labels must hold integer (or integral float / bool) values, got dtype {labels.dtype}.")
    if np.issubdtype(labels.dtype, np.floating):
        if not np.all(np.isfinite(labels)):
            raise ValueError("labels must be finite integer ids, got NaN or infinite values.")
        if not np.all(labels == np.round(labels)):
            bad = labels[labels != np.round(labels)].flat[0]
            raise ValueError(
                f"labels must be integer instance ids (0 = background), got non-integer value {bad} "
                f"(dtype {labels.dtype}). Interpolated labels must be resampled with mode='nearest'."
            )
        if labels.min() < 0:
            raise ValueError(f"labels must be non-negative (0 = background), got minimum {labels.min()}.")
        if labels.max() > np.iinfo(np.int64).max / 2:
            raise ValueError(f"label ids are too large to be integers, got maximum {labels.max()}.")
        return labels.astype(np.int64)
    if np.issubdtype(labels.dtype, np.signedinteger) and labels.min() < 0:
        raise ValueError(f"labels must be non-negative (0 = background), got minimum {labels.min()}.")
    if labels.dtype == np.uint64:
        if labels.max() > np.iinfo(np.int64).max:
            raise ValueError(f"label ids are too large, got maximum {labels.max()}.")
        return labels.astype(np.int64)
    return labels

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

"""Renumbering of label maps: the one home of relabelling in the package.

Two renumberings of non-negative integer labels, both keeping the order of the values:

- :py:func:`relabel_sequential`: every distinct value (0 included) to its rank ``0..n-1``, with the table of
  values; the contingency tables of the metrics (:py:mod:`monai_unet2015.metrics.contingency`) use it.
- ``_relabel_consecutive``: the positive values to ``1..N``, background 0 staying 0, exactly the forward map of
  ``skimage.segmentation.relabel_sequential`` (scikit-image is not a run-time dependency of the package; the
  tests compare the two); :py:func:`~monai_unet2015.transforms.instances.label_instances` and the weight map
  use it.

Both are one ``np.bincount`` lookup table (``O(pixels + largest label)``) when the labels are small, and
``np.unique`` (a sort) when they are sparse and large.
"""

from __future__ import annotations

import numpy as np

__all__ = ["relabel_sequential"]


def _rank(flat: np.ndarray, dtype: type, keep_dense: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(rank, values)`` of non-empty, flat, non-negative integers: sorted distinct values, ``values[rank] == flat``.

    With ``keep_dense``, labels that are already ``0..n-1`` come back as ``flat`` itself (cast to ``dtype``
    without a copy where possible) instead of through the lookup table.
    """
    top = int(flat.max())
    if top < 4 * flat.size + (1 << 16):  # dense lookup table: O(N + max label)
        values = np.flatnonzero(np.bincount(flat, minlength=top + 1))
        if keep_dense and values.size == top + 1:
            return flat.astype(dtype, copy=False), values
        lut = np.zeros(top + 1, dtype=dtype)
        lut[values] = np.arange(values.size, dtype=dtype)
        return lut[flat], values
    values, inverse = np.unique(flat, return_inverse=True)
    return inverse.reshape(-1).astype(dtype, copy=False), values


def relabel_sequential(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber non-negative integer labels to ``0..n-1`` in increasing order of value.

    Returns ``(dense, values)`` with ``values[dense] == labels`` (both int64; ``dense`` has the shape of
    ``labels``). Unlike ``skimage.segmentation.relabel_sequential``, the smallest value maps to 0 whether or not
    it is 0: this is the dense index a contingency table needs.

    Examples::

        >>> import numpy as np
        >>> dense, values = relabel_sequential(np.array([0, 7, 7, 3]))
        >>> dense.tolist(), values.tolist()
        ([0, 2, 2, 1], [0, 3, 7])
    """
    flat = np.asarray(labels).ravel()
    if flat.dtype == bool or not np.issubdtype(flat.dtype, np.integer):
        flat = flat.astype(np.int64)
    if flat.size == 0:
        return flat.astype(np.int64), flat.astype(np.int64)
    dense, values = _rank(flat, np.int64, keep_dense=False)
    return dense.reshape(np.shape(labels)), values.astype(np.int64)


def _relabel_consecutive(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Instance ids ``1..N`` (int32; 0 stays 0) of a non-negative integer array, in increasing order, and ``N``.

    The forward map of ``skimage.segmentation.relabel_sequential(labels)``; ids that are already ``1..N`` come
    back without a lookup (and without a copy for int32 input). ``labels`` must already be checked (e.g. by
    :py:func:`~monai_unet2015.transforms.instances.label_instances`).
    """
    flat = labels.ravel()
    if flat.size == 0:
        return np.zeros(labels.shape, np.int32), 0
    rank, values = _rank(flat, np.int32, keep_dense=True)
    rank = rank.reshape(labels.shape)
    if values[0] == 0:
        return rank, int(values.size - 1)
    return rank + np.int32(1), int(values.size)  # no background pixel at all

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

"""Sparse contingency table (pixel overlap counts) of two label maps.

The Rand error (ISBI 2012) and the SEG measure (Cell Tracking Challenge) both reduce to this table:
how many pixels carry label ``a`` in one map and label ``b`` in the other. It is built with one
``np.bincount`` over paired, densely renumbered labels
(:py:func:`~monai_unet2015.transforms.instances.relabel.relabel_sequential`), with no loop over objects.
"""

from __future__ import annotations

import numpy as np

# re-export; home: monai_unet2015.transforms.instances.relabel (the one relabelling of the package)
from monai_unet2015.transforms.instances.relabel import relabel_sequential

__all__ = ["relabel_sequential", "contingency_table"]


def contingency_table(labels_a: np.ndarray, labels_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero entries of the contingency table of two non-negative integer label maps of equal shape.

    Returns ``(a, b, count)``: ``count[k]`` pixels have label ``a[k]`` in ``labels_a`` and ``b[k]`` in
    ``labels_b``; pairs are sorted by ``(a, b)`` and labels keep their original values.

    Examples::

        >>> import numpy as np
        >>> a, b, n = contingency_table(np.array([1, 1, 2, 2, 2]), np.array([5, 0, 0, 0, 5]))
        >>> a.tolist(), b.tolist(), n.tolist()
        ([1, 1, 2, 2], [0, 5, 0, 5], [1, 1, 2, 1])
    """
    la, lb = np.asarray(labels_a).ravel(), np.asarray(labels_b).ravel()
    if la.shape != lb.shape:
        raise ValueError(f"contingency_table: label maps must have the same size, got {la.size} and {lb.size}.")
    da, va = relabel_sequential(la)
    db, vb = relabel_sequential(lb)
    na, nb = va.size, vb.size
    if na == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    key = da * nb + db
    if na * nb <= 4 * key.size + 4096:
        counts = np.bincount(key, minlength=na * nb)
        nz = np.flatnonzero(counts)
        cnt = counts[nz]
    else:  # sparse: many labels on both sides
        nz, cnt = np.unique(key, return_counts=True)
    return va[nz // nb], vb[nz % nb], cnt.astype(np.int64)

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

"""Object-level errors of an instance segmentation: missed, false, split and merged cells.

SEG says how good the matched cells are; these counts say what went wrong. With ``|R & S|`` the overlap of a
reference object ``R`` and a predicted object ``S`` (both label > 0):

- ``S`` *covers* ``R`` when ``|R & S| > 0.5 |R|`` (the SEG match: at most one ``S`` per ``R``);
- ``S`` *lies in* ``R`` when ``|R & S| > 0.5 |S|`` (at most one ``R`` per ``S``).

Then, per image:

- **merged**: reference objects whose covering object also covers another reference object (two cells
  that came out as one count 2);
- **split**: reference objects in which two or more predicted objects lie (a cell cut into pieces);
- **missed**: reference objects that are neither covered nor split;
- **false**: predicted objects that neither cover a reference object nor lie in one (mostly background,
  or straddling several cells without a majority anywhere);
- **reference** and **predicted**: the numbers of objects.

A reference object can be both merged and split (covered by a merging object, with a second fragment); the
counts are not a partition. Everything comes from one contingency table per image
(:py:func:`~monai_unet2015.metrics.contingency.contingency_table`), with no loop over objects.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from monai.metrics import CumulativeIterationMetric
from monai.utils import look_up_option

from ._validation import batch_layout, buffered, check_batch, check_label_map, to_numpy
from .contingency import contingency_table

__all__ = ["INSTANCE_COUNTS", "InstanceErrors", "instance_errors", "InstanceErrorMetric"]


class InstanceErrors(NamedTuple):
    """Object counts of an instance segmentation against a reference (summed over a batch)."""

    reference: int
    """Reference objects."""
    predicted: int
    """Predicted objects."""
    missed: int
    """Reference objects neither covered nor split."""
    false: int
    """Predicted objects that neither cover a reference object nor lie in one."""
    split: int
    """Reference objects in which two or more predicted objects lie."""
    merged: int
    """Reference objects whose covering predicted object covers another reference object too."""


INSTANCE_COUNTS = InstanceErrors._fields
"""The names of the counts, in the order of :py:class:`InstanceErrors`."""


def _image_errors(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The six counts of :py:class:`InstanceErrors` for one image (int64)."""
    r, s, n = contingency_table(ref, pred)  # label 0 included on both sides
    ref_ids, r_dense = np.unique(r, return_inverse=True)
    pred_ids, s_dense = np.unique(s, return_inverse=True)
    size_r = np.bincount(r_dense, weights=n)
    size_s = np.bincount(s_dense, weights=n)
    obj_r, obj_s = ref_ids > 0, pred_ids > 0
    pair = obj_r[r_dense] & obj_s[s_dense]
    covers = pair & (2 * n > size_r[r_dense])
    lies_in = pair & (2 * n > size_s[s_dense])
    n_cover = np.bincount(s_dense[covers], minlength=pred_ids.size)  # reference objects each S covers
    merged = int(n_cover[n_cover >= 2].sum())
    n_inside = np.bincount(r_dense[lies_in], minlength=ref_ids.size)  # predicted objects lying in each R
    split_r = n_inside >= 2
    covered_r = np.bincount(r_dense[covers], minlength=ref_ids.size) > 0
    missed = int(np.count_nonzero(obj_r & ~covered_r & ~split_r))
    used_s = (n_cover > 0) | (np.bincount(s_dense[lies_in], minlength=pred_ids.size) > 0)
    false = int(np.count_nonzero(obj_s & ~used_s))
    return np.array(
        [np.count_nonzero(obj_r), np.count_nonzero(obj_s), missed, false, int(np.count_nonzero(split_r)), merged],
        dtype=np.int64,
    )


def _batch_errors(y_pred, y, func: str) -> np.ndarray:
    p, g = batch_layout(to_numpy(y_pred, "y_pred", func), to_numpy(y, "y", func), func, (2, 3))
    p = check_label_map(p, "y_pred", func)
    g = check_label_map(g, "y", func)
    return np.stack([_image_errors(p[b], g[b]) for b in range(p.shape[0])])


def instance_errors(y_pred, y) -> InstanceErrors:
    """Missed, false, split and merged objects of predicted instance labels against reference labels.

    See the module docstring for the definitions. Labels need not be consecutive; 2D and 3D.

    Args:
        y_pred: predicted instance label map, ``(H, W)``, ``(B, 1, H, W)`` or ``(B, 1, D, H, W)``.
        y: reference instance label map of the same shape.

    Returns:
        :py:class:`InstanceErrors`, summed over the images of the batch.

    Examples::

        >>> import numpy as np
        >>> ref = np.array([[1, 1, 0, 2, 2, 0, 3, 3, 3, 3, 0, 4, 4]])
        >>> pred = np.array([[7, 7, 7, 7, 7, 0, 5, 5, 6, 6, 0, 0, 0]])  # 1 and 2 merged, 3 split, 4 missed
        >>> instance_errors(pred, ref)
        InstanceErrors(reference=4, predicted=3, missed=1, false=0, split=1, merged=2)
    """
    return InstanceErrors(*(int(v) for v in _batch_errors(y_pred, y, "instance_errors").sum(axis=0)))


class InstanceErrorMetric(CumulativeIterationMetric):
    """One count of :py:func:`instance_errors` as a MONAI cumulative metric, summed over an evaluation.

    Each call buffers the six counts of every image ``(B, 6)``; :py:meth:`aggregate` returns the sum of the
    chosen ``count`` over everything buffered, and :py:meth:`aggregate_details` all six.

    Args:
        count: one of ``"reference"``, ``"predicted"``, ``"missed"``, ``"false"``, ``"split"``, ``"merged"``.

    Examples::

        >>> import torch
        >>> ref = torch.tensor([[[[1, 1, 0, 2, 2, 0, 3, 3]]]])
        >>> pred = torch.tensor([[[[4, 4, 4, 4, 4, 0, 0, 9]]]])
        >>> metric = InstanceErrorMetric("merged")
        >>> _ = metric(y_pred=pred, y=ref)
        >>> float(metric.aggregate()), metric.aggregate_details().missed
        (2.0, 1)
    """

    def __init__(self, count: str = "missed") -> None:
        super().__init__()
        self.count = look_up_option(count, INSTANCE_COUNTS)

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """The six counts per image ``(B, 6)`` of ``(B, 1, *spatial)`` instance label maps."""
        func = type(self).__name__
        check_batch(y_pred, y, func, y_is="the reference labels y are")
        return torch.as_tensor(_batch_errors(y_pred, y, func), dtype=torch.float64, device=y_pred.device)

    def aggregate_details(self) -> InstanceErrors:
        """All six counts, summed over everything buffered."""
        return InstanceErrors(*(int(v) for v in buffered(self).sum(dim=0).tolist()))

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """The chosen count over everything buffered (a 0-d float64 tensor)."""
        return buffered(self)[:, INSTANCE_COUNTS.index(self.count)].sum()

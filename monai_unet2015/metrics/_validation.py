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

"""Input checks shared by the segmentation metrics: layouts, probability maps, label maps, thresholds, options.

``connectivity`` is checked by :py:func:`monai_unet2015.transforms.instances.connectivity.check_connectivity`, the
package's one check of it.

Private: the public functions of :py:mod:`monai_unet2015.metrics` call these so that bad input gets
one clear ``ValueError``/``TypeError`` naming the function, the argument, the value and what is valid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from monai.utils import look_up_option

__all__: list[str] = []


def to_numpy(x, name: str, func: str) -> np.ndarray:
    """A numpy view/copy of a torch tensor (any device, MetaTensor included) or array-like."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy() if x.dtype != torch.bfloat16 else x.detach().float().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    if x is None:
        raise TypeError(f"{func}: {name} is required, got None.")
    try:
        arr = np.asarray(x)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise TypeError(f"{func}: {name} must be a torch.Tensor or numpy array, got {type(x).__name__}.") from e
    if arr.dtype == object:
        raise TypeError(f"{func}: {name} must be a torch.Tensor or numpy array, got {type(x).__name__}.")
    return arr


def check_batch(y_pred, y, func: str, spatial: Sequence[int] = (2, 3), y_is: str = "the ground truth y is") -> None:
    """What a MONAI metric's ``_compute_tensor`` is given: ``y`` present, ``y_pred`` batch-first channel-first."""
    if y is None:
        raise ValueError(f"{func}: {y_is} required.")
    if y_pred.ndim < 4:
        raise ValueError(
            f"{func}: y_pred and y must be batch-first channel-first (B, 1, H, W)"
            f"{' or (B, 1, D, H, W)' if 3 in spatial else ''}, got shape {tuple(y_pred.shape)}."
        )


def buffered(metric) -> torch.Tensor:
    """The buffer of a MONAI cumulative ``metric``, or an error naming it when nothing was buffered."""
    data = metric.get_buffer()
    if not isinstance(data, torch.Tensor) or data.numel() == 0:
        raise ValueError(f"{type(metric).__name__}: nothing to aggregate, call the metric on some data first.")
    return data


def batch_layout(y_pred: np.ndarray, y: np.ndarray, func: str, spatial: Sequence[int] = (2, 3)):
    """Bring ``y_pred`` and ``y`` to ``(B, *spatial)``; accepts ``(H, W)`` or ``(B, 1, *spatial)``.

    Returns the two arrays without the channel axis.
    """
    if y_pred.shape != y.shape:
        raise ValueError(
            f"{func}: y_pred and y must have the same shape, got y_pred {tuple(y_pred.shape)} and y {tuple(y.shape)}."
        )
    nd = y_pred.ndim
    layouts = " or ".join(
        (["(H, W) for one 2D image"] if 2 in spatial else [])
        + [f"(B, 1, {'H, W' if s == 2 else 'D, H, W'})" for s in spatial]
    )
    if nd == 2 and 2 in spatial:
        return y_pred[None], y[None]
    if nd - 2 in spatial and nd >= 4:
        if y_pred.shape[1] != 1:
            raise ValueError(
                f"{func}: y_pred and y must have one channel (batch-first, channel-first {layouts}), got "
                f"{y_pred.shape[1]} channels in shape {tuple(y_pred.shape)}; for a two-channel softmax output "
                "pass the foreground channel, e.g. y_pred[:, 1:], and a label map (not one-hot) as y."
            )
        return y_pred[:, 0], y[:, 0]
    if nd == 5 and 3 not in spatial:
        raise ValueError(
            f"{func}: this metric is defined for 2D images only, got a 3D input of shape {tuple(y_pred.shape)}; "
            f"expected {layouts}. Evaluate a 3D stack slice by slice, e.g. "
            "y_pred.permute(0, 2, 1, 3, 4).reshape(-1, 1, H, W)."
        )
    raise ValueError(f"{func}: y_pred and y must have shape {layouts}, got {tuple(y_pred.shape)}.")


def check_probability(p: np.ndarray, name: str, func: str) -> np.ndarray:
    """Float64 copy of a probability map; values must be finite and within [0, 1]."""
    if p.dtype == bool:
        return p.astype(np.float64)
    if not (np.issubdtype(p.dtype, np.number)):
        raise TypeError(f"{func}: {name} must be a numeric probability map, got dtype {p.dtype}.")
    p = p.astype(np.float64, copy=False)
    if p.size:
        lo, hi = float(np.min(p)), float(np.max(p))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{func}: {name} must be a probability map with values in [0, 1], got values in [{lo:.4g}, {hi:.4g}]"
                " (non-finite values included); apply a softmax/sigmoid to logits first."
            )
    return p


def check_label_map(x: np.ndarray, name: str, func: str, binary: bool = False) -> np.ndarray:
    """Integer (int64) copy of a label map; floats must hold integers, labels must be non-negative.

    With ``binary=True`` the values must be 0 or 1 and a bool array is returned.
    """
    if x.dtype == bool:
        return x.copy() if binary else x.astype(np.int64)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise TypeError(f"{func}: {name} must be an integer label map, got dtype {x.dtype}.")
    if np.issubdtype(x.dtype, np.floating):
        if x.size and not np.all(np.isfinite(x)):
            raise ValueError(f"{func}: {name} must be a label map of integer values, got non-finite values.")
        if x.size and not np.array_equal(x, np.round(x)):
            bad = x[x != np.round(x)].ravel()[:4]
            raise ValueError(
                f"{func}: {name} must be a label map (integer values, float dtype allowed), got dtype {x.dtype} "
                f"with non-integer values such as {bad.tolist()}; threshold probabilities first."
            )
    if x.size and float(np.min(x)) < 0:
        raise ValueError(f"{func}: {name} must have non-negative labels, got minimum {np.min(x)}.")
    if binary:
        if x.size and not np.all((x == 0) | (x == 1)):
            vals = np.unique(x)
            raise ValueError(
                f"{func}: {name} must be binary (values 0 and 1), got values {vals[:6].tolist()}"
                f"{' ...' if vals.size > 6 else ''}; for 8-bit masks (0/255, as the ISBI 2012 label PNGs) pass y / 255"
                " or y > 0."
            )
        return x != 0
    return x.astype(np.int64, copy=False)


def check_thresholds(thresholds, func: str) -> np.ndarray:
    """The binarisation levels as a sorted-as-given float64 vector within [0, 1]."""
    try:
        t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64)).ravel()
    except (TypeError, ValueError) as e:
        raise TypeError(f"{func}: thresholds must be a float or a sequence of floats, got {thresholds!r}.") from e
    if t.size == 0 or not np.all(np.isfinite(t)) or t.min() < 0.0 or t.max() > 1.0:
        raise ValueError(f"{func}: thresholds must be one or more values in [0, 1], got {thresholds!r}.")
    return t


def check_choice(value, name: str, choices: Sequence[str], func: str) -> str:
    """``value`` (case-insensitive) looked up in ``choices`` with ``monai.utils.look_up_option``."""
    try:
        return look_up_option(value.lower() if isinstance(value, str) else value, tuple(choices))
    except ValueError:
        raise ValueError(f"{func}: {name} must be one of {tuple(choices)}, got {value!r}.") from None

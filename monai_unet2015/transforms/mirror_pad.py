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

"""
Mirror padding that works for any pad size (repeated reflection), 2D and 3D, CPU and GPU.

The paper (Ronneberger et al., MICCAI 2015, Fig. 2) extrapolates the missing context at the image
border by mirroring the image. ``torch.nn.functional.pad(mode="reflect")`` refuses pads that are not
smaller than the image, which happens as soon as an image is smaller than the network's border (92 px
for the paper's network). Here the image is reflected again and again, so any pad works.

Reflection convention: symmetric about the edge pixel, *without* repeating it, i.e. numpy's
``np.pad(mode="reflect")`` and torch's ``mode="reflect"``: the row ``a b c d`` continues as
``... c b | a b c d | c b a b c d c ...``. The mirrored signal is periodic with period ``2 * (L - 1)``;
a length-1 axis is repeated as a constant.

Everything is index based: :py:func:`mirror_indices` gives the source index of every padded position,
:py:func:`mirror_crop` extracts any window of the (infinitely) mirrored image directly from the unpadded
image, without materialising the padded copy, which is what overlap-tile inference needs for large
inputs. :py:func:`mirror_pad` pads a whole image; :py:class:`MirrorPad` / :py:class:`MirrorPadd` are the
MONAI transforms (MetaTensor in and out, affine updated, invertible).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch

from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data.meta_obj import get_track_meta
from monai.data.meta_tensor import MetaTensor
from monai.transforms.croppad.array import SpatialCrop
from monai.transforms.inverse import InvertibleTransform, TraceableTransform
from monai.transforms.transform import MapTransform
from monai.transforms.utils import create_translate
from monai.utils import TraceKeys, TransformBackends, convert_to_dst_type, convert_to_tensor, ensure_tuple

__all__ = [
    "mirror_indices",
    "mirror_crop",
    "mirror_pad",
    "MirrorPad",
    "MirrorPadd",
    "MirrorPadD",
    "MirrorPadDict",
]


def _reflect(positions: torch.Tensor, length: int) -> torch.Tensor:
    """Map positions on an infinitely mirrored axis of ``length`` pixels back to indices in ``[0, length)``."""
    if length == 1:
        return torch.zeros_like(positions)
    period = 2 * (length - 1)
    m = torch.remainder(positions, period)  # non-negative for a positive divisor
    return torch.where(m < length, m, period - m)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def mirror_indices(
    length: int, before: int, after: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """
    Source indices of an axis of ``length`` pixels mirror-padded by ``before`` and ``after`` pixels.

    ``x.index_select(axis, mirror_indices(L, b, a))`` pads ``x`` along ``axis`` exactly as
    ``np.pad(..., mode="reflect")`` does, for any ``b`` and ``a`` (repeated reflection when the pad is not
    smaller than the axis).

    Args:
        length: length of the unpadded axis (>= 1).
        before: pixels added before the first pixel (>= 0).
        after: pixels added after the last pixel (>= 0).
        device: device of the returned index tensor.

    Returns:
        an int64 tensor of ``before + length + after`` indices in ``[0, length)``.

    Examples::

        >>> mirror_indices(4, 5, 3).tolist()
        [1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    """
    length = _check_int("length", length, 1)
    before = _check_int("before", before, 0)
    after = _check_int("after", after, 0)
    return _reflect(torch.arange(-before, length + after, device=device), length)


def _spatial_setup(img: torch.Tensor, spatial_dims: int | None) -> tuple[int, int]:
    nsp = img.ndim - 1 if spatial_dims is None else int(spatial_dims)
    if nsp < 1 or nsp > img.ndim:
        raise ValueError(
            f"spatial_dims must be between 1 and img.ndim={img.ndim} (image shape {tuple(img.shape)}), "
            f"got {spatial_dims}."
        )
    lead = img.ndim - nsp
    for i in range(nsp):
        if img.shape[lead + i] < 1:
            raise ValueError(f"cannot mirror an empty axis: image shape {tuple(img.shape)}.")
    return nsp, lead


def mirror_crop(
    img: NdarrayOrTensor,
    roi_start: Sequence[int] | int,
    roi_size: Sequence[int] | int,
    spatial_dims: int | None = None,
) -> NdarrayOrTensor:
    """
    Extract the window ``[roi_start, roi_start + roi_size)`` of the infinitely mirrored ``img``.

    ``roi_start`` may be negative and the window may extend past the image by any amount: positions
    outside the image are taken from its mirror images (see the module docstring for the convention).
    Only the window is allocated: axes inside the image are narrowed (views), the others are gathered
    with ``index_select`` after narrowing them to the span of their reflected indices, so no intermediate
    is larger than the window. When the window lies inside the image the result is a view of ``img``.

    Args:
        img: channel-first image ``(C, *spatial)``, or any tensor whose last ``spatial_dims`` axes are spatial.
        roi_start: first position of the window per spatial axis (an int is used for every axis).
        roi_size: window length per spatial axis (an int is used for every axis), each >= 1.
        spatial_dims: number of trailing spatial axes; defaults to ``img.ndim - 1``.

    Returns:
        the window, same type, dtype and device as ``img`` (a plain tensor for a MetaTensor: the
        metadata would no longer describe it; use :py:class:`MirrorPad` for tracked metadata).

    Examples::

        >>> import torch
        >>> img = torch.arange(4.0).reshape(1, 4)
        >>> mirror_crop(img, -5, 12)
        tensor([[1., 2., 3., 2., 1., 0., 1., 2., 3., 2., 1., 0.]])
    """
    img_t = convert_to_tensor(img, track_meta=False)
    nsp, lead = _spatial_setup(img_t, spatial_dims)
    starts = [int(s) for s in ensure_tuple(roi_start)]
    sizes = [int(s) for s in ensure_tuple(roi_size)]
    starts = starts * nsp if len(starts) == 1 else starts
    sizes = sizes * nsp if len(sizes) == 1 else sizes
    if len(starts) != nsp or len(sizes) != nsp:
        raise ValueError(
            f"roi_start and roi_size need 1 or {nsp} values (spatial dims), "
            f"got roi_start={roi_start}, roi_size={roi_size}."
        )
    if any(s < 1 for s in sizes):
        raise ValueError(f"roi_size must be >= 1 along every axis, got {roi_size}.")
    out = _mirror_crop(img_t, lead, starts, sizes)
    if isinstance(img, torch.Tensor):
        return out
    return convert_to_dst_type(out, img)[0]


def _mirror_crop(img_t: torch.Tensor, lead: int, starts: Sequence[int], sizes: Sequence[int]) -> torch.Tensor:
    """:py:func:`mirror_crop` of a plain tensor with ``lead`` non-spatial axes and checked ``starts``/``sizes``."""
    out = img_t
    gathers = []
    for i, (start, size) in enumerate(zip(starts, sizes)):
        axis, length = lead + i, img_t.shape[lead + i]
        if start >= 0 and start + size <= length:
            out = out.narrow(axis, start, size)
            continue
        idx = _reflect(torch.arange(start, start + size), length)
        lo, hi = int(idx.min()), int(idx.max())
        out = out.narrow(axis, lo, hi - lo + 1)
        gathers.append((axis, idx - lo))
    for axis, idx in gathers:
        out = out.index_select(axis, idx.to(out.device))
    return out


def _pad_widths(spatial_border: Sequence[int] | int, nsp: int) -> list[tuple[int, int]]:
    """Per-axis ``(before, after)`` from MONAI's ``BorderPad`` convention (1, ``nsp`` or ``2 * nsp`` values)."""
    border = ensure_tuple(spatial_border)
    for b in border:
        _check_int("spatial_border", b, 0)
    if len(border) == 1:
        return [(int(border[0]), int(border[0]))] * nsp
    if len(border) == nsp:
        return [(int(b), int(b)) for b in border]
    if len(border) == 2 * nsp:
        return [(int(border[2 * i]), int(border[2 * i + 1])) for i in range(nsp)]
    raise ValueError(
        f"spatial_border needs 1, {nsp} (one per spatial axis) or {2 * nsp} (before/after per axis) values, "
        f"got {len(border)}: {spatial_border}."
    )


def mirror_pad(
    img: NdarrayOrTensor, spatial_border: Sequence[int] | int, spatial_dims: int | None = None
) -> NdarrayOrTensor:
    """
    Mirror-pad ``img`` by any amount (repeated reflection), the same result as ``np.pad(mode="reflect")``.

    Args:
        img: channel-first image ``(C, *spatial)``, or any tensor whose last ``spatial_dims`` axes are spatial.
        spatial_border: pad width as in :py:class:`monai.transforms.BorderPad`: one int for every side, one
            int per spatial axis (both sides), or ``[before_0, after_0, before_1, after_1, ...]``.
        spatial_dims: number of trailing spatial axes; defaults to ``img.ndim - 1``.

    Returns:
        the padded image, same type, dtype and device as ``img`` (a plain tensor for a MetaTensor).

    Examples::

        >>> import torch
        >>> mirror_pad(torch.tensor([[1.0, 2.0]]), 3)
        tensor([[2., 1., 2., 1., 2., 1., 2., 1.]])
    """
    img_t = convert_to_tensor(img, track_meta=False)
    nsp, lead = _spatial_setup(img_t, spatial_dims)
    out = _mirror_pad(img_t, lead, _pad_widths(spatial_border, nsp))
    if isinstance(img, torch.Tensor):
        return out
    return convert_to_dst_type(out, img)[0]


def _mirror_pad(img_t: torch.Tensor, lead: int, widths: Sequence[tuple[int, int]]) -> torch.Tensor:
    """:py:func:`mirror_pad` of a plain tensor with ``lead`` non-spatial axes and checked ``(before, after)`` widths."""
    starts = [-b for b, _ in widths]
    sizes = [b + img_t.shape[lead + i] + a for i, (b, a) in enumerate(widths)]
    out = _mirror_crop(img_t, lead, starts, sizes)
    if not any(b or a for b, a in widths):
        out = out.clone()  # never hand back a view of the input
    return out


class MirrorPad(InvertibleTransform):
    """
    Mirror-pad a channel-first image by any amount, as in Fig. 2 of the 2015 U-Net paper.

    Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
    MICCAI 2015, https://arxiv.org/abs/1505.04597: "To predict the pixels in the border region of the
    image, the missing context is extrapolated by mirroring the input image."

    Unlike :py:class:`monai.transforms.BorderPad` with ``mode="reflect"``, the pad may be larger than the
    image (the image is reflected repeatedly) and the computation stays in torch on the input's device.
    The convention is numpy's ``"reflect"`` (the edge pixel is not repeated). The affine of a MetaTensor
    is updated like MONAI's padding transforms and the operation is recorded, so ``inverse`` (and
    :py:class:`monai.transforms.Invertd`) crops the padding away again.

    Args:
        spatial_border: pad width as in :py:class:`monai.transforms.BorderPad`: one int for every side,
            one int per spatial axis (both sides), or ``[before_0, after_0, before_1, after_1, ...]``.

    Examples::

        >>> import torch
        >>> from monai_unet2015.transforms import MirrorPad
        >>> img = torch.arange(12.0).reshape(1, 3, 4)
        >>> pad = MirrorPad(5)
        >>> padded = pad(img)
        >>> padded.shape
        torch.Size([1, 13, 14])
        >>> bool((pad.inverse(padded) == img).all())
        True
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, spatial_border: Sequence[int] | int) -> None:
        _pad_widths(spatial_border, len(ensure_tuple(spatial_border)))  # type / sign check only
        self.spatial_border = spatial_border

    def __call__(self, img: NdarrayOrTensor, spatial_border: Sequence[int] | int | None = None) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first image ``(C, *spatial)`` (numpy array, tensor or MetaTensor).
            spatial_border: overrides the constructor's pad width for this call.
        """
        border = self.spatial_border if spatial_border is None else spatial_border
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        nsp, lead = _spatial_setup(img_t, None)
        spatial = [int(s) for s in img_t.shape[1:]]
        widths = _pad_widths(border, nsp)
        to_pad = [(0, 0)] + widths
        rank = img_t.peek_pending_rank() if isinstance(img_t, MetaTensor) else 3
        meta_info = TraceableTransform.track_transform_meta(
            img_t,
            sp_size=[s + b + a for s, (b, a) in zip(spatial, widths)],
            affine=create_translate(rank, [-b for b, _ in widths]),
            extra_info={"padded": to_pad, "mode": "mirror"},
            orig_size=spatial,
            transform_info=self.get_transform_info(),
            lazy=False,
        )
        out = _mirror_pad(convert_to_tensor(img_t, track_meta=False), lead, widths)
        out = convert_to_tensor(out, track_meta=get_track_meta())
        return out.copy_meta_from(meta_info) if isinstance(out, MetaTensor) else out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        """Crop the padding recorded by the last :py:class:`MirrorPad` applied to ``data`` away."""
        transform = self.pop_transform(data)
        padded = transform[TraceKeys.EXTRA_INFO]["padded"][1:]
        cropper = SpatialCrop(
            roi_start=[b for b, _ in padded], roi_end=[s - a for s, (_, a) in zip(data.shape[1:], padded)]
        )
        with cropper.trace_transform(False):
            return cropper(data)  # type: ignore[return-value]


class MirrorPadd(MapTransform, InvertibleTransform):
    """
    Dictionary-based wrapper of :py:class:`MirrorPad`.

    Args:
        keys: keys of the corresponding items to be transformed.
        spatial_border: pad width, see :py:class:`MirrorPad`.
        allow_missing_keys: don't raise exception if key is missing.

    Examples::

        >>> import torch
        >>> from monai_unet2015.transforms import MirrorPadd
        >>> out = MirrorPadd(keys="image", spatial_border=(2, 3))({"image": torch.zeros(1, 4, 4)})
        >>> out["image"].shape
        torch.Size([1, 8, 10])
    """

    backend = MirrorPad.backend

    def __init__(
        self, keys: KeysCollection, spatial_border: Sequence[int] | int, allow_missing_keys: bool = False
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.padder = MirrorPad(spatial_border)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.padder(d[key])
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.padder.inverse(d[key])
        return d


MirrorPadD = MirrorPadDict = MirrorPadd

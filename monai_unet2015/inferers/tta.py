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

"""Test-time augmentation over flips and rotations by 90 degrees, wrapping any MONAI inferer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from monai.data.meta_obj import get_track_meta
from monai.data.meta_tensor import MetaTensor
from monai.inferers import Inferer
from monai.utils import convert_to_tensor, look_up_option

from monai_unet2015.inferers.geometry import _is_int
from monai_unet2015.inferers.overlap_tile import OverlapTileInferer

__all__ = ["DihedralTransform", "dihedral_transforms", "DihedralTTAInferer"]

_GROUPS = ("dihedral", "rot90", "flips", "identity")


def _look_up_group(group: str) -> str:
    """``group`` checked with ``monai.utils.look_up_option``, the error naming the argument."""
    try:
        return look_up_option(group, _GROUPS)
    except ValueError:
        raise ValueError(f"group must be one of {_GROUPS}, got {group!r}.") from None


class DihedralTransform(NamedTuple):
    """
    One element of the augmentation group: flip the spatial axes ``flips``, then rotate by ``k`` quarter
    turns in the plane ``spatial_axes`` (from the first towards the second axis, as :py:func:`torch.rot90`).
    Axis indices are spatial (0 is the first axis after the channel).
    """

    flips: tuple[int, ...]
    k: int
    spatial_axes: tuple[int, int]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the transform to a batch ``(N, C, *spatial)``."""
        if self.flips:
            x = torch.flip(x, [a + 2 for a in self.flips])
        if self.k % 4:
            x = torch.rot90(x, self.k, [a + 2 for a in self.spatial_axes])
        return x

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Undo :py:meth:`forward` on a batch ``(N, K, *spatial)`` (e.g. the network's prediction)."""
        if self.k % 4:
            x = torch.rot90(x, -self.k, [a + 2 for a in self.spatial_axes])
        if self.flips:
            x = torch.flip(x, [a + 2 for a in self.flips])
        return x


def dihedral_transforms(
    spatial_dims: int, group: str = "dihedral", spatial_axes: Sequence[int] = (0, 1)
) -> list[DihedralTransform]:
    """
    The transforms of a test-time augmentation group; the identity comes first.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3; 1 allows ``"flips"`` and ``"identity"``).
        group: ``"dihedral"``: the 8 symmetries of a square in the plane ``spatial_axes`` (4 rotations by
            90 degrees, each with and without a flip; in 2D these are all 8 flips/rotations of the image; in
            3D the third axis is left alone, suited to anisotropic stacks). ``"rot90"``: the 4 rotations in
            that plane (the paper's "rotated versions"). ``"flips"``: all ``2 ** spatial_dims`` combinations
            of flipped axes (no axes are swapped, so it suits anisotropic voxels in 3D). ``"identity"``: no
            augmentation.
        spatial_axes: the rotation plane, two distinct spatial axes; MONAI's ``Rotate90`` default ``(0, 1)``.

    Examples::

        >>> len(dihedral_transforms(2)), len(dihedral_transforms(3, "flips")), len(dihedral_transforms(3, "rot90"))
        (8, 8, 4)
    """
    return _dihedral_transforms(spatial_dims, _look_up_group(group), tuple(int(a) for a in spatial_axes))


def _dihedral_transforms(spatial_dims: int, group: str, axes: tuple[int, ...]) -> list[DihedralTransform]:
    """:py:func:`dihedral_transforms` of a looked-up ``group``; checks what depends on the image: its spatial
    dimensions and the rotation plane within them."""
    if not _is_int(spatial_dims) or spatial_dims < 1:
        raise ValueError(f"spatial_dims must be a positive int, got {spatial_dims!r}.")
    if group in ("dihedral", "rot90") and (
        len(axes) != 2 or axes[0] == axes[1] or not all(0 <= a < spatial_dims for a in axes)
    ):
        raise ValueError(
            f"spatial_axes must be two distinct spatial axes in [0, {spatial_dims}) for group={group!r}, got {axes}."
        )
    if group == "identity":
        return [DihedralTransform((), 0, axes)]
    if group == "flips":
        combos = [tuple(a for a in range(spatial_dims) if (m >> a) & 1) for m in range(1 << spatial_dims)]
        return [DihedralTransform(c, 0, axes) for c in combos]
    flips = [()] if group == "rot90" else [(), (axes[0],)]
    return [DihedralTransform(f, k, axes) for f in flips for k in range(4)]


def _accumulate(
    total: torch.Tensor | None, pred: torch.Tensor, t: DihedralTransform, postprocess: Callable | None
) -> torch.Tensor:
    """The running sum of the mapped-back predictions plus ``t.inverse(postprocess(pred))`` (the sum in float32 or
    wider, created from the first prediction)."""
    if postprocess is not None:
        pred = postprocess(pred)
    pred = t.inverse(pred)
    if total is None:
        return pred.to(torch.promote_types(pred.dtype, torch.float32), copy=True)
    total += pred
    return total


def _runs_on_gpu(inputs: torch.Tensor, network: Any) -> bool:
    """Whether ``network`` computes on a CUDA device: where its parameters are, else where ``inputs`` are."""
    module = network if isinstance(network, torch.nn.Module) else getattr(network, "__self__", None)
    if isinstance(module, torch.nn.Module):
        param = next(module.parameters(), None)
        if param is not None:
            return param.device.type == "cuda"
    return inputs.device.type == "cuda"


class DihedralTTAInferer(Inferer):
    """
    Test-time augmentation: average the predictions of an inner inferer over flipped and rotated
    copies of the input, each mapped back to the input's orientation.

    Ronneberger, Fischer & Brox, MICCAI 2015 (https://arxiv.org/abs/1505.04597), ISBI 2012 results: the
    network output was averaged over rotated versions of the input. The default group is the 8
    flips/rotations by 90 degrees of 2D images; see :py:func:`dihedral_transforms` for the groups and
    what they do in 3D (default: the 8 symmetries of the first two spatial axes).

    The wrapper works with any inferer whose output is co-located with its input (same spatial size, or
    centred like a valid network's output): :py:class:`OverlapTileInferer` (the default),
    ``SimpleInferer``, ``SlidingWindowInferer``... With :py:class:`OverlapTileInferer` any valid-padding
    network works, whatever its :py:class:`~monai_unet2015.inferers.geometry.TilingGeometry`: the geometry's
    rule is the same along every axis, so the flipped and rotated copies (axes swapped) are tiled by the same
    rule and each is seamless. Each augmented input is computed, passed through the
    inner inferer and discarded before the next one; memory is the input, one augmented copy, the inner
    inferer's own needs, and two output-sized buffers (the running sum and one prediction).

    Args:
        inferer: the inner inferer; ``None`` builds an :py:class:`OverlapTileInferer` with its defaults.
        group: ``"dihedral"`` (default), ``"rot90"``, ``"flips"`` or ``"identity"``, see
            :py:func:`dihedral_transforms`.
        spatial_axes: the rotation plane for ``"dihedral"`` / ``"rot90"`` (spatial axis indices).
        postprocess: optional callable applied to every prediction before it is mapped back and averaged,
            e.g. ``lambda y: torch.softmax(y, 1)`` to average probabilities instead of logits.
        gpu_only: ``True``: average the group only where the network runs on a GPU (its parameters, or for a
            network without parameters the inputs, on a CUDA device) and make one pass elsewhere: a bundle's
            ``tta: auto`` decided by each process that runs the network, e.g. each dask worker of an
            out-of-core job, not by the process that configured it. Default ``False``: always the group.

    The result is a MetaTensor with the input's metadata when the input is one.

    Examples::

        >>> import torch
        >>> from monai_unet2015.networks.nets import UNet2015
        >>> from monai_unet2015.inferers import DihedralTTAInferer, OverlapTileInferer
        >>> net = UNet2015(features=(4, 8, 16), dropout=0.0).eval()
        >>> tta = DihedralTTAInferer(OverlapTileInferer(roi_size=32))
        >>> tta(torch.rand(1, 1, 40, 30), net).shape
        torch.Size([1, 2, 40, 30])
        >>> x = torch.rand(1, 1, 40, 30)  # on a CPU, gpu_only makes the one pass of the inner inferer
        >>> torch.equal(DihedralTTAInferer(OverlapTileInferer(roi_size=32), gpu_only=True)(x, net),
        ...             OverlapTileInferer(roi_size=32)(x, net))
        True
    """

    def __init__(
        self,
        inferer: Inferer | None = None,
        group: str = "dihedral",
        spatial_axes: Sequence[int] = (0, 1),
        postprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        gpu_only: bool = False,
    ) -> None:
        Inferer.__init__(self)
        if inferer is not None and not callable(inferer):
            raise TypeError(f"inferer must be a MONAI Inferer (callable), got {type(inferer).__name__}.")
        if postprocess is not None and not callable(postprocess):
            raise TypeError(f"postprocess must be callable or None, got {type(postprocess).__name__}.")
        group = _look_up_group(group)
        axes = tuple(int(a) for a in spatial_axes)
        if len(axes) != 2 or axes[0] == axes[1] or min(axes) < 0:
            raise ValueError(f"spatial_axes must be two distinct non-negative spatial axes, got {spatial_axes}.")
        self.inferer = OverlapTileInferer() if inferer is None else inferer
        self.group = group
        self.spatial_axes = tuple(int(a) for a in spatial_axes)
        self.postprocess = postprocess
        if not isinstance(gpu_only, bool):
            raise TypeError(f"gpu_only must be True or False, got {gpu_only!r}.")
        self.gpu_only = gpu_only

    def group_for(self, inputs: torch.Tensor, network: Any) -> str:
        """The group this call averages: :py:attr:`group`, or ``"identity"`` (one pass) when :py:attr:`gpu_only`
        and the network does not run on a GPU."""
        return self.group if not self.gpu_only or _runs_on_gpu(inputs, network) else "identity"

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        """
        Args:
            inputs: batch ``(N, C, *spatial)``.
            network: the model, passed to the inner inferer.
            args: optional args passed to the inner inferer (and by it to ``network``).
            kwargs: optional keyword args passed to the inner inferer.

        Returns:
            the average of the mapped-back predictions.
        """
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"inputs must be a torch.Tensor of shape (N, C, *spatial), got {type(inputs).__name__}.")
        transforms = _dihedral_transforms(inputs.ndim - 2, self.group_for(inputs, network), self.spatial_axes)
        data = convert_to_tensor(inputs, track_meta=False)
        total: torch.Tensor | None = None
        for t in transforms:
            pred = self.inferer(t.forward(data), network, *args, **kwargs)
            if not isinstance(pred, torch.Tensor):
                raise TypeError(f"the inner inferer must return one tensor, got {type(pred).__name__}.")
            total = _accumulate(total, convert_to_tensor(pred, track_meta=False), t, self.postprocess)
            del pred
        assert total is not None
        total /= len(transforms)
        if isinstance(inputs, MetaTensor) and get_track_meta():
            return convert_to_tensor(total, track_meta=True).copy_meta_from(inputs)  # type: ignore[no-any-return]
        return total

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

"""Seamless overlap-tile inference for valid-padding networks (Ronneberger et al. 2015, Fig. 2)."""

from __future__ import annotations

import contextlib
import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from monai.data.meta_obj import get_track_meta
from monai.data.meta_tensor import MetaTensor
from monai.data.utils import dense_patch_slices
from monai.inferers import Inferer
from monai.utils import convert_to_tensor, ensure_tuple, optional_import

from monai_unet2015.networks.nets.unet2015 import (
    unet2015_border,
    unet2015_input_size_for_output,
    unet2015_is_valid_size,
    unet2015_nearest_valid_sizes,
    unet2015_output_size,
)
from monai_unet2015.transforms.mirror_pad import mirror_crop

tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = ["OverlapTileInferer", "TilePlan", "estimate_tile_bytes"]

_AMP_DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


class TilePlan(NamedTuple):
    """How an image is cut into tiles, see :py:meth:`OverlapTileInferer.plan`.

    Attributes:
        input_size: spatial size of every input tile (a valid network input size).
        output_size: spatial size of every output tile, ``input_size - 2 * border``.
        starts: per spatial axis, the first output pixel of each tile (multiples of ``2 ** (depth - 1)``);
            the tiles are all combinations. The input tile of an output tile starting at ``s`` covers the
            mirrored image from ``s - border`` to ``s + output_size + border``.
        border: pixels lost by the network on each side.
    """

    input_size: tuple[int, ...]
    output_size: tuple[int, ...]
    starts: tuple[tuple[int, ...], ...]
    border: int

    @property
    def num_tiles(self) -> int:
        """Number of tiles per image."""
        return math.prod(len(s) for s in self.starts)


def estimate_tile_bytes(input_size: Sequence[int], first_width: int, batch: int = 1) -> int:
    """
    Rough upper estimate of the memory one forward pass of a :py:class:`UNet2015` needs for ``batch``
    input tiles of ``input_size`` (fp32): ``batch * prod(input_size) * 4 * (8 * first_width + 48)`` bytes,
    2D and 3D alike.

    The coefficients were calibrated against the peak resident memory of CPU forward passes (measured
    per pixel, in fp32 values: full-width 2D network at 572^2 5.7 * 64 vs 8 * 64 + 48 here; 4-channel 2D
    network 16.5 * 4 vs 8 * 4 + 48; 3D networks 13 to 54 vs 80 to 176), so the estimate errs on the safe
    side. It excludes the weights and the stitched output.

    Args:
        input_size: spatial size of one input tile.
        first_width: channels of the first level (``features[0]``, 64 in the paper).
        batch: tiles per forward pass (``sw_batch_size``).

    Examples::

        >>> round(estimate_tile_bytes((572, 572), 64) / 2**20)
        699
    """
    per_voxel = 8 * int(first_width) + 48
    return int(batch) * math.prod(int(s) for s in input_size) * 4 * per_voxel


def _unwrap(network: Any) -> Any:
    """The module behind DataParallel / DistributedDataParallel / torch.compile wrappers."""
    for _ in range(4):
        inner = getattr(network, "module", None) or getattr(network, "_orig_mod", None)
        if inner is None or inner is network:
            break
        network = inner
    return network


#: depth of the paper's network, against which ``input_roi_size`` is checked when no ``depth``/``border`` is given
_PAPER_DEPTH = 5
_EXAMPLES = {"roi_size": "388, the paper's tile", "input_roi_size": "572, the paper's tile"}


def _positive_sizes(name: str, value: Any, what: str) -> tuple[int, ...]:
    """``value`` (an int or one int per spatial axis) as a tuple of positive ints, else a clear error."""
    values = ensure_tuple(value)
    where = f" in {name}={value!r}" if len(values) > 1 else ""
    if not values:
        raise ValueError(f"{name} needs one {what} or one per spatial axis, got {value!r}.")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(
                f"{name} must be a positive {what} per axis given as int(s) (e.g. {_EXAMPLES[name]}), "
                f"got {v!r} ({type(v).__name__}){where}."
            )
        if v < 1:
            hint = "; for one tile along an axis give a size at least the image's" if name == "roi_size" else ""
            raise ValueError(
                f"{name} must be a positive {what} per axis (e.g. {_EXAMPLES[name]}), got {int(v)}{where}{hint}."
            )
    return tuple(int(v) for v in values)


def _invalid_input_size_message(size: int, depth: int, context: str) -> str:
    below, above = unet2015_nearest_valid_sizes(size, depth)
    near = str(above) if below < 0 else f"{below} or {above}"
    return f"input_roi_size {size} is not a valid input size for depth {depth}{context}; nearest valid sizes: {near}."


def _depth_from_border(border: int) -> int:
    if isinstance(border, bool) or not isinstance(border, int) or border < 8:
        raise ValueError(
            f"border must be an int of the form 6 * 2**(depth - 1) - 4 (8, 20, 44, 92, ...), got {border!r}."
        )
    q, r = divmod(border + 4, 6)
    if r or q & (q - 1):
        raise ValueError(
            f"border={border} is not the border of a UNet2015 (6 * 2**(depth - 1) - 4: 8, 20, 44, 92, 188, ...)."
        )
    return q.bit_length()


class OverlapTileInferer(Inferer):
    """
    Seamless overlap-tile inference for valid-padding networks such as
    :py:class:`monai_unet2015.networks.nets.UNet2015`.

    Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
    MICCAI 2015, https://arxiv.org/abs/1505.04597, Fig. 2: a valid-padding network predicts only the
    pixels whose full context lies in its input tile; an image of any size is segmented tile by tile and
    the context missing at the image border is extrapolated by mirroring.

    The image is (virtually) mirror-padded by the network's ``border`` (92 px for the paper's network,
    repeated reflection when the image is smaller than that, see
    :py:mod:`monai_unet2015.transforms.mirror_pad`). Output tiles of a valid size are laid out with MONAI's
    :py:func:`monai.data.utils.dense_patch_slices` so that they cover the image, each input tile (output
    tile + border on every side) is cut directly from the unpadded image by reflected indices, and each
    valid output is written at its place in an output of the image's own spatial size. Tile origins are
    multiples of ``2 ** (depth - 1)`` (the pooling grid), so every tile computes exactly the features a
    single pass over the whole mirrored image would: the stitched result equals that pass (to float
    rounding) for every image size and overlap. Overlapping tiles therefore predict the same values; they
    are written, not blended, and ``overlap > 0`` only costs time.

    Tile size: give the output tile (``roi_size``, e.g. 388 for the paper's 572 input tile), or the input
    tile (``input_roi_size``, must be a valid size), or a memory budget (``memory_budget_mb``, the largest
    valid square/cubic tile whose :py:func:`estimate_tile_bytes` fits). With none of them, a budget of
    ``DEFAULT_MEMORY_BUDGET_MB`` is used. ``roi_size`` is rounded up to a valid output size; a ``roi_size`` or
    budget tile is then balanced: along each axis the smallest valid tile that needs no more tiles is used
    (an explicit ``input_roi_size`` is kept as given). Along an axis where the image is smaller than a tile
    the tile shrinks to one pass over that axis: for one pass over the whole image along an axis, give a
    ``roi_size`` at least the image's size there (e.g. ``roi_size=(388, 100_000)`` tiles only the first
    axis). :py:meth:`plan` shows the tiling. The network's ``depth`` /
    ``border`` are read from the network (also behind ``DataParallel``); pass ``depth`` or ``border`` for a
    network without them (e.g. a plain function).

    Memory: besides the input and the output (batch x out_channels x image size, on ``device``) the
    inferer holds ``sw_batch_size`` input tiles and output tiles and one network forward pass over them;
    no padded copy of the image, no count map and no weight map are allocated. An 8192x8192 image or a
    512^3 volume therefore needs the input, the output and a working set that depends only on the tile.
    The network runs under ``torch.no_grad()``.

    Args:
        roi_size: output tile size per spatial axis (an int is used for every axis), positive ints; rounded
            up to a valid output size. A size at least the image's gives one tile along that axis.
        sw_batch_size: tiles per network call.
        overlap: fraction of the output tile by which neighbouring tiles overlap, in ``[0, 1)``, per axis
            or one value. Does not change the result (see above).
        input_roi_size: alternatively, the input tile size per spatial axis (valid sizes only, e.g. 572 for
            depth 5). Checked when the inferer is built against ``depth`` (or the depth of ``border``), else
            against the paper's depth 5 (pass ``depth=...`` for a network of another depth), and again
            against the network's depth at call time.
        memory_budget_mb: alternatively, the memory (MiB) allowed for one forward pass of ``sw_batch_size``
            tiles, see :py:func:`estimate_tile_bytes`; needs a network with ``features`` or conv weights.
        border: pixels the network loses per side, for networks without a ``border`` attribute.
        depth: number of resolution levels, for networks without a ``depth`` attribute.
        sw_device: device the network runs on (tiles are moved there); defaults to the input's device.
        device: device of the stitched output; defaults to the input's device. ``sw_device="cuda"``,
            ``device="cpu"`` computes on the GPU and keeps the large output in host memory.
        progress: show a ``tqdm`` progress bar over the network calls.
        amp_dtype: ``None`` (default), ``"bfloat16"`` or ``"float16"``: run the network under
            ``torch.autocast`` of ``sw_device``'s type. On CPUs without AMX/AVX512-BF16 bfloat16
            convolutions are much slower than float32.

    The output has the input's batch size, the network's output channels and the input's spatial size;
    its dtype is the input's floating dtype (float32 for integer input); it is a MetaTensor carrying the
    input's metadata (affine, applied operations) when the input is one, so ``Invertd`` / ``SaveImaged``
    work on it.

    Raises:
        ValueError: a non-positive ``roi_size`` / ``input_roi_size`` entry, an ``input_roi_size`` that is not
            a valid input size (the message names the nearest valid sizes), and other bad arguments.
        TypeError: a ``roi_size`` / ``input_roi_size`` entry that is not an int (bools and floats included).

    Examples::

        >>> import torch
        >>> from monai_unet2015.networks.nets import UNet2015
        >>> from monai_unet2015.inferers import OverlapTileInferer
        >>> net = UNet2015(features=(4, 8, 16), dropout=0.0).eval()
        >>> inferer = OverlapTileInferer(roi_size=64, sw_batch_size=2)
        >>> image = torch.rand(1, 1, 150, 97)
        >>> out = inferer(image, net)
        >>> out.shape
        torch.Size([1, 2, 150, 97])
        >>> inferer.plan(image.shape[2:], net).num_tiles
        6
        >>> OverlapTileInferer(roi_size=(64, 10_000)).plan(image.shape[2:], net).starts  # one tile along axis 1
        ((0, 52, 100), (0,))
        >>> OverlapTileInferer(input_roi_size=570)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: input_roi_size 570 is not a valid input size for depth 5 (...); nearest valid sizes: 556 or 572.
    """

    DEFAULT_MEMORY_BUDGET_MB = 1024

    def __init__(
        self,
        roi_size: Sequence[int] | int | None = None,
        sw_batch_size: int = 1,
        overlap: Sequence[float] | float = 0.0,
        input_roi_size: Sequence[int] | int | None = None,
        memory_budget_mb: float | None = None,
        border: int | None = None,
        depth: int | None = None,
        sw_device: torch.device | str | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
        amp_dtype: str | torch.dtype | None = None,
    ) -> None:
        Inferer.__init__(self)
        given = [n for n, v in (("roi_size", roi_size), ("input_roi_size", input_roi_size),
                                ("memory_budget_mb", memory_budget_mb)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of roi_size, input_roi_size and memory_budget_mb, got {given}.")
        if border is not None and depth is not None and _depth_from_border(border) != depth:
            raise ValueError(
                f"border={border} and depth={depth} disagree: depth {depth} loses {unet2015_border(depth)} px."
            )
        if border is not None:
            _depth_from_border(border)
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 2):
            raise ValueError(f"depth must be an int >= 2, got {depth!r}.")
        self.roi_size = None if roi_size is None else _positive_sizes("roi_size", roi_size, "output tile size")
        self.input_roi_size = (
            None if input_roi_size is None else _positive_sizes("input_roi_size", input_roi_size, "input tile size")
        )
        if self.input_roi_size is not None:  # fail now, not at the first call; __call__ checks the real depth
            if depth is not None:
                known, context = depth, f" (depth={depth})"
            elif border is not None:
                known, context = _depth_from_border(border), f" (border={border})"
            else:
                known = _PAPER_DEPTH
                context = " (the paper's network; pass depth=... or border=... for a network of another depth)"
            for r in self.input_roi_size:
                if not unet2015_is_valid_size(r, known):
                    raise ValueError(_invalid_input_size_message(r, known, context))
        if memory_budget_mb is None and not given:
            memory_budget_mb = self.DEFAULT_MEMORY_BUDGET_MB
        if memory_budget_mb is not None and (isinstance(memory_budget_mb, bool) or not float(memory_budget_mb) > 0):
            raise ValueError(f"memory_budget_mb must be a positive number, got {memory_budget_mb!r}.")
        self.memory_budget_mb = None if memory_budget_mb is None else float(memory_budget_mb)
        if isinstance(sw_batch_size, bool) or not isinstance(sw_batch_size, (int, np.integer)):
            kind = type(sw_batch_size).__name__
            raise TypeError(f"sw_batch_size must be an int >= 1, got {sw_batch_size!r} ({kind}).")
        if sw_batch_size < 1:
            raise ValueError(f"sw_batch_size must be an int >= 1, got {sw_batch_size}.")
        self.sw_batch_size = int(sw_batch_size)
        self.overlap = tuple(float(o) for o in ensure_tuple(overlap))
        if any(not 0.0 <= o < 1.0 for o in self.overlap):
            raise ValueError(f"overlap must be in [0, 1) along every axis, got {overlap}.")
        self.border = border
        self.depth = depth
        self.sw_device = sw_device
        self.device = device
        self.progress = bool(progress)
        if progress and not has_tqdm:
            warnings.warn("progress=True needs tqdm, which is not installed: no progress bar.")
        if amp_dtype is None or isinstance(amp_dtype, torch.dtype):
            self.amp_dtype = amp_dtype
        elif isinstance(amp_dtype, str) and amp_dtype.lower() in _AMP_DTYPES:
            self.amp_dtype = _AMP_DTYPES[amp_dtype.lower()]
        else:
            raise ValueError(f"amp_dtype must be None, 'bfloat16' or 'float16', got {amp_dtype!r}.")
        if self.amp_dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(f"amp_dtype must be None, torch.bfloat16 or torch.float16, got {amp_dtype!r}.")

    # ------------------------------------------------------------------ network geometry
    def network_depth(self, network: Any = None) -> int:
        """The depth used for ``network``: the ``depth`` / ``border`` argument, else the network's own."""
        net = _unwrap(network)
        own = getattr(net, "depth", None)
        own_border = getattr(net, "border", None)
        if own is None and isinstance(own_border, int):
            own = _depth_from_border(own_border)
        mine = self.depth
        if mine is None and self.border is not None:
            mine = _depth_from_border(self.border)
        if mine is not None:
            if isinstance(own, int) and own != mine:
                raise ValueError(
                    f"the network has depth {own} (border {unet2015_border(own)}) but the inferer was given "
                    f"depth={self.depth}, border={self.border}."
                )
            return mine
        if isinstance(own, int):
            return own
        raise ValueError(
            f"cannot read the depth of {type(net).__name__}: it has no 'depth' or 'border' attribute; "
            "pass depth=... or border=... to OverlapTileInferer."
        )

    @staticmethod
    def _first_width(network: Any, spatial_dims: int) -> int | None:
        net = _unwrap(network)
        features = getattr(net, "features", None)
        if isinstance(features, (tuple, list)) and features:
            return int(features[0])
        if isinstance(net, torch.nn.Module):
            for p in net.parameters():
                if p.ndim == spatial_dims + 2:
                    return int(p.shape[0])
        return None

    def plan(self, image_size: Sequence[int], network: Any = None) -> TilePlan:
        """
        The tiling of an image of spatial size ``image_size`` for ``network``.

        Args:
            image_size: spatial size of the image.
            network: the network (for its depth and, with a memory budget, its width); may be ``None``
                when ``depth`` or ``border`` was given and the budget is not used.
        """
        image_size = tuple(int(s) for s in image_size)
        nsp = len(image_size)
        if any(s < 1 for s in image_size):
            raise ValueError(f"the image must have at least one pixel along every spatial axis, got size {image_size}.")
        depth = self.network_depth(network)
        border, step = unet2015_border(depth), 1 << (depth - 1)

        def out_for(length: int) -> int:  # smallest valid output length >= length
            return unet2015_output_size(unet2015_input_size_for_output(length, depth), depth)

        if self.roi_size is not None:
            out_tile = [out_for(r) for r in self._per_axis("roi_size", self.roi_size, nsp)]
        elif self.input_roi_size is not None:
            out_tile = []
            for r in self._per_axis("input_roi_size", self.input_roi_size, nsp):
                if not unet2015_is_valid_size(r, depth):
                    assumed = self.depth is None and self.border is None
                    context = (
                        f" (the network's depth; the inferer was built assuming the paper's depth {_PAPER_DEPTH}: "
                        f"pass depth={depth} to check the tile there)"
                        if assumed
                        else ""
                    )
                    raise ValueError(_invalid_input_size_message(r, depth, context))
                out_tile.append(unet2015_output_size(r, depth))
        else:
            out_tile = [self._budget_input_size(network, nsp, depth) - 2 * border] * nsp

        def layout(t: int, s: int, o: float) -> tuple[int, int, int]:  # extent, interval, number of tiles
            if t >= s:
                return t, t, 1
            extent = s + (t - s) % step  # extent - t is a multiple of step: the last origin is aligned
            interval = max(step, int(t * (1.0 - o)) // step * step)
            return extent, interval, 1 + -(-(extent - t) // interval)

        sizes, extents, intervals = [], [], []
        for t, s, o in zip(out_tile, image_size, self._per_axis("overlap", self.overlap, nsp)):
            t = min(t, out_for(s))  # no tile larger than one pass over the whole image
            if t < s:  # several tiles: each must span a pooling step, origins are multiples of it
                t = min(max(t, out_for(step)), out_for(s))
            if t < s and self.input_roi_size is None:
                # balance: the smallest valid tile that needs no more tiles than the requested one
                count = layout(t, s, o)[2]
                smaller = out_for(max(step, -(-s // count)))
                while smaller < t and layout(smaller, s, o)[2] > count:
                    smaller += step
                t = min(t, smaller)
            extent, interval, _ = layout(t, s, o)
            sizes.append(t)
            extents.append(extent)
            intervals.append(interval)
        slices = dense_patch_slices(extents, sizes, intervals, return_slice=False)
        starts = [tuple(sorted({int(sl[axis][0]) for sl in slices})) for axis in range(nsp)]
        return TilePlan(
            input_size=tuple(t + 2 * border for t in sizes),
            output_size=tuple(sizes),
            starts=tuple(starts),
            border=border,
        )

    @staticmethod
    def _per_axis(name: str, values: tuple, nsp: int) -> tuple:
        if len(values) == 1:
            return values * nsp
        if len(values) != nsp:
            raise ValueError(f"{name} needs 1 or {nsp} values for a {nsp}D image, got {values}.")
        return values

    def _budget_input_size(self, network: Any, nsp: int, depth: int) -> int:
        width = self._first_width(network, nsp)
        if width is None:
            raise ValueError(
                f"memory_budget_mb needs the network's first-level width (a 'features' attribute or conv weights), "
                f"which {type(_unwrap(network)).__name__} does not expose: pass roi_size or input_roi_size instead."
            )
        budget = float(self.memory_budget_mb) * 2**20  # type: ignore[arg-type]
        step = 1 << (depth - 1)
        size = unet2015_nearest_valid_sizes(1, depth)[1]
        if estimate_tile_bytes((size,) * nsp, width, self.sw_batch_size) > budget:
            need = estimate_tile_bytes((size,) * nsp, width, self.sw_batch_size) / 2**20
            raise ValueError(
                f"memory_budget_mb={self.memory_budget_mb} is too small: the smallest valid tile ({size}^{nsp}, "
                f"sw_batch_size={self.sw_batch_size}) needs about {need:.0f} MiB."
            )
        per_tile = estimate_tile_bytes((1,) * nsp, width, self.sw_batch_size)
        largest = int((budget / per_tile) ** (1.0 / nsp))
        return max(size, size + (largest - size) // step * step)

    # ------------------------------------------------------------------ inference
    def __call__(  # type: ignore[override]
        self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """
        Args:
            inputs: batch of images ``(N, C, *spatial)``, any spatial size.
            network: a valid-padding network mapping ``(n, C, *tile)`` to ``(n, K, *(tile - 2 * border))``.
            args: optional args passed to ``network``.
            kwargs: optional keyword args passed to ``network``.

        Returns:
            ``(N, K, *spatial)`` predictions, a MetaTensor with the input's metadata when ``inputs`` is one.
        """
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(f"inputs must be a torch.Tensor of shape (N, C, *spatial), got {type(inputs).__name__}.")
        nsp = inputs.ndim - 2
        own_dims = getattr(_unwrap(network), "spatial_dims", None)
        if nsp < 1 or (isinstance(own_dims, int) and own_dims != nsp):
            want = f"{own_dims} spatial dims" if isinstance(own_dims, int) else "at least 1 spatial dim"
            raise ValueError(f"inputs must have shape (N, C, *spatial) with {want}, got shape {tuple(inputs.shape)}.")
        if inputs.shape[0] < 1 or inputs.shape[1] < 1:
            raise ValueError(f"inputs need at least one image and one channel, got shape {tuple(inputs.shape)}.")
        image_size = tuple(int(s) for s in inputs.shape[2:])
        plan = self.plan(image_size, network)
        device = torch.device(self.device) if self.device is not None else inputs.device
        sw_device = torch.device(self.sw_device) if self.sw_device is not None else inputs.device
        data = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
        out_dtype = data.dtype if data.is_floating_point() else torch.float32

        tiles = [(n, origin) for n in range(data.shape[0]) for origin in itertools.product(*plan.starts)]
        batches = range(0, len(tiles), self.sw_batch_size)
        if self.progress and has_tqdm:
            batches = tqdm(batches)
        amp = (
            torch.autocast(device_type=sw_device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        output: torch.Tensor | None = None
        with torch.no_grad():
            for first in batches:
                chunk = tiles[first : first + self.sw_batch_size]
                window = torch.stack(
                    [mirror_crop(data[n], [s - plan.border for s in origin], plan.input_size) for n, origin in chunk]
                ).to(sw_device)
                with amp:
                    pred = network(window, *args, **kwargs)
                del window
                if not isinstance(pred, torch.Tensor):
                    raise TypeError(
                        f"the network must return one tensor, got {type(pred).__name__}; wrap it to select the output."
                    )
                if tuple(pred.shape[2:]) != plan.output_size or pred.shape[0] != len(chunk):
                    raise ValueError(
                        f"the network mapped input tiles {(len(chunk), data.shape[1], *plan.input_size)} to "
                        f"{tuple(pred.shape)}, expected ({len(chunk)}, K, *{plan.output_size}) for a valid-padding "
                        f"network losing {plan.border} px per side (depth {self.network_depth(network)})."
                    )
                if output is None:
                    output = torch.empty((data.shape[0], pred.shape[1], *image_size), dtype=out_dtype, device=device)
                for j, (n, origin) in enumerate(chunk):
                    keep = [min(t, s - o) for t, s, o in zip(plan.output_size, image_size, origin)]
                    dst = (n, slice(None), *(slice(o, o + k) for o, k in zip(origin, keep)))
                    src = (j, slice(None), *(slice(0, k) for k in keep))
                    output[dst] = pred[src].to(device=device, dtype=out_dtype)
                del pred
        assert output is not None  # at least one tile per image
        if isinstance(inputs, MetaTensor) and get_track_meta():
            result = convert_to_tensor(output, track_meta=True)
            return result.copy_meta_from(inputs)  # type: ignore[no-any-return]
        return output


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

import torch

from monai.data.meta_obj import get_track_meta
from monai.data.meta_tensor import MetaTensor
from monai.data.utils import dense_patch_slices
from monai.inferers import Inferer
from monai.utils import convert_to_tensor, ensure_tuple, look_up_option, optional_import

from monai_unet2015.inferers.geometry import (
    TilingGeometry,
    UNet2015Geometry,
    _is_int,
    check_geometry,
    describe_geometry,
    estimate_tile_bytes,
    nearest_valid_sizes,
)
from monai_unet2015.networks.nets.unet2015 import unet2015_border, unet2015_nearest_valid_sizes
from monai_unet2015.transforms.mirror_pad import mirror_crop

tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = ["OverlapTileInferer", "TilePlan", "estimate_tile_bytes"]

_AMP_DTYPES = {
    None: None,
    torch.bfloat16: torch.bfloat16,
    torch.float16: torch.float16,
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
        starts: per spatial axis, the first output pixel of each tile (multiples of the geometry's ``step``,
            ``2 ** (depth - 1)`` for a UNet2015); the tiles are all combinations. The input tile of an output
            tile starting at ``s`` covers the mirrored image from ``s - border`` to ``s + output_size + border``.
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
        if not _is_int(v):
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


def _invalid_input_size_message(size: int, geometry: TilingGeometry, context: str) -> str:
    below, above = nearest_valid_sizes(geometry, size)
    near = str(above) if below < 0 else f"{below} or {above}"
    return (
        f"input_roi_size {size} is not a valid input size for {describe_geometry(geometry)}{context}; "
        f"nearest valid sizes: {near}."
    )


def _depth_from_border(border: int) -> int:
    return UNet2015Geometry.from_border(border).depth


def _same_geometry(a: TilingGeometry, b: TilingGeometry) -> bool:
    """Whether two geometries tile alike (border, step and smallest valid input)."""
    if isinstance(a, UNet2015Geometry) and isinstance(b, UNet2015Geometry):
        return a.depth == b.depth
    return (a.border, a.step, a.input_size_for_output(1)) == (b.border, b.step, b.input_size_for_output(1))


class OverlapTileInferer(Inferer):
    """
    Seamless overlap-tile inference for valid-padding networks such as
    :py:class:`monai_unet2015.networks.nets.UNet2015`, or any other network (or plain function) that
    states its :py:class:`~monai_unet2015.inferers.geometry.TilingGeometry`.

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
    multiples of the geometry's ``step`` (the pooling grid, ``2 ** (depth - 1)`` for a UNet2015), so every
    tile computes exactly the features a single pass over the whole mirrored image would: the stitched
    result equals that pass (to float rounding) for every image size and overlap. Overlapping tiles
    therefore predict the same values; they are written, not blended, and ``overlap > 0`` only costs time.

    Tile size: give the output tile (``roi_size``, e.g. 388 for the paper's 572 input tile), or the input
    tile (``input_roi_size``, must be a valid size), or a memory budget (``memory_budget_mb``, the largest
    valid square/cubic tile whose estimated memory fits: :py:func:`estimate_tile_bytes` for a UNet2015, the
    geometry's ``tile_bytes`` otherwise). With none of them, a budget of ``DEFAULT_MEMORY_BUDGET_MB`` is
    used. ``roi_size`` is rounded up to a valid output size; a ``roi_size`` or
    budget tile is then balanced: along each axis the smallest valid tile that needs no more tiles is used
    (an explicit ``input_roi_size`` is kept as given). Along an axis where the image is smaller than a tile
    the tile shrinks to one pass over that axis: for one pass over the whole image along an axis, give a
    ``roi_size`` at least the image's size there (e.g. ``roi_size=(388, 100_000)`` tiles only the first
    axis). :py:meth:`plan` shows the tiling.

    Geometry (valid sizes, border, grid of tile origins, see :py:mod:`monai_unet2015.inferers.geometry`): read
    from the network's ``tiling_geometry()`` (also behind ``DataParallel`` / ``torch.compile``), else from a
    ``depth`` / ``border`` attribute as a UNet2015's (e.g. a TorchScript UNet2015). For a network without them
    or a plain function pass ``geometry=`` (e.g. ``ValidPaddingGeometry(border=6)`` for three unpadded 5x5
    convolutions), or, for a UNet2015-shaped one, the shorthand ``depth=`` / ``border=``.

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
            depth 5). Checked when the inferer is built against ``geometry`` (or ``depth``, or the depth of
            ``border``), else against the paper's depth 5 (pass ``depth=...`` for a network of another depth,
            ``geometry=...`` for another network), and again against the network's geometry at call time.
        memory_budget_mb: alternatively, the memory (MiB) allowed for one forward pass of ``sw_batch_size``
            tiles, see :py:func:`estimate_tile_bytes`; needs a UNet2015 (``features`` or conv weights) or a
            geometry with ``tile_bytes``.
        border: shorthand for ``geometry=UNet2015Geometry.from_border(border)``: pixels a UNet2015-shaped
            network loses per side (``6 * 2 ** (depth - 1) - 4``), for networks without a geometry.
        depth: shorthand for ``geometry=UNet2015Geometry(depth)``: number of resolution levels of a
            UNet2015-shaped network, for networks without a geometry.
        sw_device: device the network runs on (tiles are moved there); defaults to the input's device.
        device: device of the stitched output; defaults to the input's device. ``sw_device="cuda"``,
            ``device="cpu"`` computes on the GPU and keeps the large output in host memory.
        progress: show a ``tqdm`` progress bar over the network calls.
        amp_dtype: ``None`` (default), ``"bfloat16"`` or ``"float16"``: run the network under
            ``torch.autocast`` of ``sw_device``'s type. On CPUs without AMX/AVX512-BF16 bfloat16
            convolutions are much slower than float32.
        geometry: the network's :py:class:`~monai_unet2015.inferers.geometry.TilingGeometry`, for a network
            without ``tiling_geometry()`` or a plain function (checked against the network's own when it
            states one); not together with ``depth`` / ``border``.

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

    Another valid-padding network, here a plain function: two unpadded 3x3 box filters (2 px lost per side,
    no pooling, so any length from 5 is valid and tiles may start anywhere)::

        >>> from monai_unet2015.inferers import ValidPaddingGeometry
        >>> box = lambda t: torch.nn.functional.avg_pool2d(torch.nn.functional.avg_pool2d(t, 3, 1), 3, 1)
        >>> inferer = OverlapTileInferer(roi_size=40, geometry=ValidPaddingGeometry(border=2))
        >>> inferer(image, box).shape, inferer.plan(image.shape[2:]).input_size
        (torch.Size([1, 1, 150, 97]), (42, 37))
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
        geometry: TilingGeometry | None = None,
    ) -> None:
        Inferer.__init__(self)
        given = [n for n, v in (("roi_size", roi_size), ("input_roi_size", input_roi_size),
                                ("memory_budget_mb", memory_budget_mb)) if v is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of roi_size, input_roi_size and memory_budget_mb, got {given}.")
        if geometry is not None and (border is not None or depth is not None):
            raise ValueError(
                f"give either geometry= or its UNet2015 shorthand depth= / border=, not both "
                f"(got geometry={geometry!r}, depth={depth!r}, border={border!r})."
            )
        if geometry is not None:
            geometry = check_geometry(geometry, "geometry")
        if border is not None and depth is not None and _depth_from_border(border) != depth:
            raise ValueError(
                f"border={border} and depth={depth} disagree: depth {depth} loses {unet2015_border(depth)} px."
            )
        if border is not None:
            _depth_from_border(border)
        if depth is not None and (not _is_int(depth) or depth < 2):
            raise ValueError(f"depth must be an int >= 2, got {depth!r}.")
        if geometry is None and depth is not None:
            geometry = UNet2015Geometry(depth)
        elif geometry is None and border is not None:
            geometry = UNet2015Geometry.from_border(border)
        self.roi_size = None if roi_size is None else _positive_sizes("roi_size", roi_size, "output tile size")
        self.input_roi_size = (
            None if input_roi_size is None else _positive_sizes("input_roi_size", input_roi_size, "input tile size")
        )
        if self.input_roi_size is not None:  # fail now, not at the first call; __call__ checks the real geometry
            if depth is not None:
                context = f" (depth={depth})"
            elif border is not None:
                context = f" (border={border})"
            elif geometry is not None:
                context = ""
            else:
                context = (
                    " (the paper's network; pass depth=... or border=... for a network of another depth, "
                    "geometry=... for another network)"
                )
            known = geometry if geometry is not None else UNet2015Geometry(_PAPER_DEPTH)
            for r in self.input_roi_size:
                if known.output_size(r) < 1:
                    raise ValueError(_invalid_input_size_message(r, known, context))
        if memory_budget_mb is None and not given:
            memory_budget_mb = self.DEFAULT_MEMORY_BUDGET_MB
        if memory_budget_mb is not None and (isinstance(memory_budget_mb, bool) or not float(memory_budget_mb) > 0):
            raise ValueError(f"memory_budget_mb must be a positive number, got {memory_budget_mb!r}.")
        self.memory_budget_mb = None if memory_budget_mb is None else float(memory_budget_mb)
        if not _is_int(sw_batch_size):
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
        #: the stated geometry (``geometry=``, or a :py:class:`UNet2015Geometry` for ``depth=`` / ``border=``);
        #: ``None``: read from the network at call time
        self.geometry: TilingGeometry | None = geometry
        self.sw_device = sw_device
        self.device = device
        self.progress = bool(progress)
        if progress and not has_tqdm:
            warnings.warn("progress=True needs tqdm, which is not installed: no progress bar.")
        try:
            self.amp_dtype = look_up_option(amp_dtype.lower() if isinstance(amp_dtype, str) else amp_dtype, _AMP_DTYPES)
        except ValueError:
            raise ValueError(
                f"amp_dtype must be None, 'bfloat16' / torch.bfloat16 or 'float16' / torch.float16, got {amp_dtype!r}."
            ) from None

    # ------------------------------------------------------------------ network geometry
    @staticmethod
    def _own_geometry(net: Any, lenient: bool = False) -> TilingGeometry | None:
        """The geometry ``net`` states: ``tiling_geometry()``, else a UNet2015 of its ``depth`` / ``border``."""
        stated = getattr(net, "tiling_geometry", None)
        if isinstance(stated, TilingGeometry):  # an attribute holding the geometry
            return check_geometry(stated, f"{type(net).__name__}.tiling_geometry")
        if callable(stated):
            return check_geometry(stated(), f"{type(net).__name__}.tiling_geometry()")
        if lenient:  # an explicit geometry= is not checked against attributes that may mean something else
            return None
        depth = getattr(net, "depth", None)
        if _is_int(depth):
            return UNet2015Geometry(depth)
        border = getattr(net, "border", None)
        if _is_int(border):
            return UNet2015Geometry.from_border(border)
        return None

    def network_geometry(self, network: Any = None) -> TilingGeometry:
        """
        The :py:class:`~monai_unet2015.inferers.geometry.TilingGeometry` used for ``network``: the inferer's
        ``geometry`` (or the UNet2015 of its ``depth`` / ``border``), checked against the network's own when it
        states one; else the network's ``tiling_geometry()`` (also behind ``DataParallel`` / ``torch.compile``),
        else a UNet2015 of the network's ``depth`` / ``border`` attribute (e.g. a TorchScript UNet2015).
        """
        net = _unwrap(network)
        mine = self.geometry
        own = self._own_geometry(net, lenient=mine is not None and self.depth is None and self.border is None)
        if mine is not None:
            if own is not None and not _same_geometry(own, mine):
                shorthand = self.depth is not None or self.border is not None
                if shorthand and isinstance(own, UNet2015Geometry):
                    raise ValueError(
                        f"the network has depth {own.depth} (border {own.border}) but the inferer was given "
                        f"depth={self.depth}, border={self.border}."
                    )
                stated = "depth / border" if shorthand else "geometry"
                raise ValueError(
                    f"the network states {describe_geometry(own)} (border {own.border}, step {own.step}) but the "
                    f"inferer was given {describe_geometry(mine)} (border {mine.border}, step {mine.step}) as "
                    f"{stated}: drop the argument or make them agree."
                )
            return mine
        if own is not None:
            return own
        raise ValueError(
            f"cannot read the geometry of {type(net).__name__}: it has no tiling_geometry() method and no 'depth' or "
            "'border' attribute; pass geometry=... (e.g. ValidPaddingGeometry(border=...)) or, for a UNet2015, "
            "depth=... or border=... to OverlapTileInferer."
        )

    def network_depth(self, network: Any = None) -> int:
        """The depth used for ``network``: the ``depth`` / ``border`` argument, else the network's own.

        Raises ``ValueError`` for a network whose geometry is not a UNet2015's (see :py:meth:`network_geometry`).
        """
        geometry = self.network_geometry(network)
        if not isinstance(geometry, UNet2015Geometry):
            raise ValueError(f"{describe_geometry(geometry)} is not a UNet2015's: it has no depth.")
        return geometry.depth

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
            network: the network (for its geometry and, with a memory budget, its width); may be ``None``
                when ``geometry``, ``depth`` or ``border`` was given and the budget is not used.
        """
        image_size = tuple(int(s) for s in image_size)
        if any(s < 1 for s in image_size):
            raise ValueError(f"the image must have at least one pixel along every spatial axis, got size {image_size}.")
        return self._plan(image_size, network, self.network_geometry(network))

    def _plan(self, image_size: tuple[int, ...], network: Any, geometry: TilingGeometry) -> TilePlan:
        nsp = len(image_size)
        border, step = int(geometry.border), int(geometry.step)

        def out_for(length: int) -> int:  # smallest valid output length >= length
            return int(geometry.output_size(geometry.input_size_for_output(length)))

        if self.roi_size is not None:
            out_tile = [out_for(r) for r in self._per_axis("roi_size", self.roi_size, nsp)]
        elif self.input_roi_size is not None:
            out_tile = []
            for r in self._per_axis("input_roi_size", self.input_roi_size, nsp):
                if geometry.output_size(r) < 1:
                    context = ""
                    if self.geometry is None:  # checked against the paper's depth when built
                        what, fix = (
                            ("depth", f"depth={geometry.depth}")
                            if isinstance(geometry, UNet2015Geometry)
                            else ("geometry", "geometry=...")
                        )
                        context = (
                            f" (the network's {what}; the inferer was built assuming the paper's depth "
                            f"{_PAPER_DEPTH}: pass {fix} to check the tile there)"
                        )
                    raise ValueError(_invalid_input_size_message(r, geometry, context))
                out_tile.append(int(geometry.output_size(r)))
        else:
            out_tile = [self._budget_input_size(network, nsp, geometry) - 2 * border] * nsp

        def layout(t: int, s: int, o: float) -> tuple[int, int, int]:  # extent, interval, number of tiles
            if t >= s:
                return t, t, 1
            extent = s + (t - s) % step  # extent - t is a multiple of step: the last origin is aligned
            interval = max(step, int(t * (1.0 - o)) // step * step)
            return extent, interval, 1 + -(-(extent - t) // interval)

        sizes, extents, intervals = [], [], []
        for t, s, o in zip(out_tile, image_size, self._per_axis("overlap", self.overlap, nsp)):
            t = min(t, out_for(s))  # no tile larger than one pass over the whole image
            if t < s:  # several tiles: each must span a grid step, origins are multiples of it
                t = min(max(t, out_for(step)), out_for(s))
            if t < s and self.input_roi_size is None:
                # balance: the smallest valid tile that needs no more tiles than the requested one
                count = layout(t, s, o)[2]
                smaller = out_for(max(step, -(-s // count)))
                while smaller < t and layout(smaller, s, o)[2] > count:
                    smaller = out_for(smaller + 1)  # the next valid output length
                t = min(t, smaller)
            if geometry.output_size(t + 2 * border) != t:
                raise ValueError(
                    f"{describe_geometry(geometry)} is inconsistent: output length {t} is valid but "
                    f"output_size({t + 2 * border}) = {geometry.output_size(t + 2 * border)}, expected {t} "
                    f"(border {border})."
                )
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

    def _budget_input_size(self, network: Any, nsp: int, geometry: TilingGeometry) -> int:
        budget = float(self.memory_budget_mb) * 2**20  # type: ignore[arg-type]
        if isinstance(geometry, UNet2015Geometry):
            return self._unet2015_budget_input_size(network, nsp, geometry, budget)
        tile_bytes = getattr(geometry, "tile_bytes", None)
        smallest = int(geometry.input_size_for_output(1))

        def estimate(size: int) -> int | None:
            return None if not callable(tile_bytes) else tile_bytes((size,) * nsp, self.sw_batch_size)

        need = estimate(smallest)
        if need is None:
            raise ValueError(
                f"memory_budget_mb needs a memory estimate, which {describe_geometry(geometry)} does not give "
                "(TilingGeometry.tile_bytes(input_size, batch), e.g. ValidPaddingGeometry(..., bytes_per_voxel=...)): "
                "pass roi_size or input_roi_size instead."
            )
        if need > budget:
            raise ValueError(
                f"memory_budget_mb={self.memory_budget_mb} is too small: the smallest valid tile ({smallest}^{nsp}, "
                f"sw_batch_size={self.sw_batch_size}) needs about {need / 2**20:.0f} MiB."
            )

        def fits_at_most(length: int) -> bool:  # the largest valid tile <= length fits the budget
            return estimate(nearest_valid_sizes(geometry, length)[0]) <= budget  # type: ignore[operator]

        low, high = smallest, 2 * smallest  # low fits; grow high until it does not, then bisect
        while fits_at_most(high):
            low, high = high, 2 * high
            if high > 1 << 40:
                raise ValueError(f"the memory estimate of {describe_geometry(geometry)} does not grow with the tile.")
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if fits_at_most(mid) else (low, mid)
        return nearest_valid_sizes(geometry, low)[0]

    def _unet2015_budget_input_size(
        self, network: Any, nsp: int, geometry: UNet2015Geometry, budget: float
    ) -> int:
        width = geometry.first_width if geometry.first_width is not None else self._first_width(network, nsp)
        if width is None:
            raise ValueError(
                f"memory_budget_mb needs the network's first-level width (a 'features' attribute or conv weights), "
                f"which {type(_unwrap(network)).__name__} does not expose: pass roi_size or input_roi_size instead."
            )
        step = geometry.step
        size = unet2015_nearest_valid_sizes(1, geometry.depth)[1]
        if estimate_tile_bytes((size,) * nsp, width, self.sw_batch_size) > budget:
            need = estimate_tile_bytes((size,) * nsp, width, self.sw_batch_size) / 2**20
            raise ValueError(
                f"memory_budget_mb={self.memory_budget_mb} is too small: the smallest valid tile ({size}^{nsp}, "
                f"sw_batch_size={self.sw_batch_size}) needs about {need:.0f} MiB."
            )
        per_tile = estimate_tile_bytes((1,) * nsp, width, self.sw_batch_size)
        largest = int((budget / per_tile) ** (1.0 / nsp))
        return max(size, size + (largest - size) // step * step)

    def window_span(self, output_size: Sequence[int], network: Any = None) -> tuple[TilePlan, tuple[int, ...]]:
        """
        The tiling of an output region of spatial size ``output_size`` whose first pixel sits on the geometry's
        grid, and the input window it needs: the region's tiles read the mirrored image from ``border`` pixels
        before the region to ``after[i]`` pixels past its end along axis ``i`` (``border`` plus the part of the
        last tile past the region, less than ``step``). :py:meth:`infer_window` computes the region from such a
        window; out-of-core inference (:py:mod:`monai_unet2015.inferers.out_of_core`) cuts the window from a
        larger image, so that the region's pixels equal those of a pass over the whole image.
        """
        size = tuple(int(s) for s in output_size)
        plan = self.plan(size, network)
        after = tuple(
            max(starts) + out - s + plan.border for starts, out, s in zip(plan.starts, plan.output_size, size)
        )
        return plan, after

    def infer_window(
        self,
        window: torch.Tensor,
        output_size: Sequence[int],
        network: Callable[..., torch.Tensor],
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        """
        Predict an output region of spatial size ``output_size`` from ``window``, the (mirrored) image around it
        as :py:meth:`window_span` describes: ``(N, C, *spatial)`` with ``spatial[i] = border + output_size[i] +
        after[i]``. No mirroring happens here; every tile is cut from the window. Returns ``(N, K, *output_size)``.
        """
        size = tuple(int(s) for s in output_size)
        geometry = self.network_geometry(network)
        plan, after = self.window_span(size, network)
        want = tuple(plan.border + s + a for s, a in zip(size, after))
        if window.ndim != len(size) + 2 or tuple(window.shape[2:]) != want:
            raise ValueError(
                f"window must have shape (N, C, *{want}) for output_size {size} (border {plan.border}), "
                f"got {tuple(window.shape)}."
            )
        return self._infer_tiles(window, size, plan, geometry, network, plan.border, args, kwargs)

    def _infer_tiles(
        self,
        inputs: torch.Tensor,
        image_size: tuple[int, ...],
        plan: TilePlan,
        geometry: TilingGeometry,
        network: Callable[..., torch.Tensor],
        offset: int,
        args: Any,
        kwargs: Any,
    ) -> torch.Tensor:
        """Run ``network`` over the tiles of ``plan`` and stitch an output of spatial size ``image_size``; the
        input tile at output origin ``o`` starts at ``o - border + offset`` of ``inputs`` (mirrored where outside)."""
        device = torch.device(self.device) if self.device is not None else inputs.device
        sw_device = torch.device(self.sw_device) if self.sw_device is not None else inputs.device
        data = convert_to_tensor(inputs, track_meta=False)
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
                shift = offset - plan.border
                window = torch.stack(
                    [mirror_crop(data[n], [s + shift for s in origin], plan.input_size) for n, origin in chunk]
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
                        f"network losing {plan.border} px per side ({describe_geometry(geometry)})."
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
        return output

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
        if any(s < 1 for s in image_size):
            raise ValueError(f"the image must have at least one pixel along every spatial axis, got size {image_size}.")
        geometry = self.network_geometry(network)
        plan = self._plan(image_size, network, geometry)
        output = self._infer_tiles(inputs, image_size, plan, geometry, network, 0, args, kwargs)
        if isinstance(inputs, MetaTensor) and get_track_meta():
            result = convert_to_tensor(output, track_meta=True)
            return result.copy_meta_from(inputs)  # type: ignore[no-any-return]
        return output


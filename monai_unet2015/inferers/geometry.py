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
The geometry of a valid-padding network, as the overlap-tile inferer needs it: which input lengths are
valid, how many pixels the network loses per side, and the grid tile origins must sit on.

:py:class:`TilingGeometry` is the protocol; :py:class:`UNet2015Geometry` implements it for
:py:class:`monai_unet2015.networks.nets.UNet2015` (returned by ``UNet2015.tiling_geometry()``) and
:py:class:`ValidPaddingGeometry` states it for any other network whose valid input lengths form an
arithmetic progression (a stack of unpadded convolutions, a valid-padding encoder-decoder, a plain function).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from monai_unet2015.networks.nets.unet2015 import (
    unet2015_border,
    unet2015_input_size_for_output,
    unet2015_nearest_valid_sizes,
    unet2015_output_size,
)

__all__ = ["TilingGeometry", "UNet2015Geometry", "ValidPaddingGeometry", "estimate_tile_bytes"]


@runtime_checkable
class TilingGeometry(Protocol):
    """
    What :py:class:`monai_unet2015.inferers.OverlapTileInferer` needs to know about a valid-padding network.
    Lengths are per spatial axis; the same rule applies along every axis (so flipped and rotated images,
    see :py:class:`monai_unet2015.inferers.DihedralTTAInferer`, are tiled by the same rule).

    Required members:

    - ``border: int``: pixels the network loses on each side, ``>= 0``. The output is centred: for every
      valid input length ``n``, ``output_size(n) == n - 2 * border``.
    - ``step: int``: tile origins are multiples of it, ``>= 1``: the network's total downsampling factor
      (``2 ** (depth - 1)`` for a U-Net with ``depth - 1`` 2x poolings, 1 without pooling). Shifting the
      input by ``step`` pixels must shift the output by ``step`` pixels; then every tile computes exactly
      what one pass over the whole mirror-padded image computes.
    - ``output_size(input_size: int) -> int``: the output length for an input length, a value below 1
      (e.g. ``-1``) when the input length is not valid.
    - ``input_size_for_output(output_size: int) -> int``: the smallest valid input length whose output
      covers at least ``output_size >= 1`` pixels.

    Optional members, used when present:

    - ``tile_bytes(input_size: Sequence[int], batch: int) -> int | None``: memory one forward pass over
      ``batch`` input tiles of spatial size ``input_size`` needs, for ``memory_budget_mb``; ``None`` when
      unknown (``memory_budget_mb`` then raises).
    - ``nearest_valid_sizes(size: int) -> tuple[int, int]``: the nearest valid input lengths at or below and
      at or above ``size`` (below ``-1`` when there is none), for error messages; derived from the
      required members when missing.

    A network states its geometry with a ``tiling_geometry()`` method returning such an object (as
    :py:meth:`UNet2015.tiling_geometry <monai_unet2015.networks.nets.UNet2015.tiling_geometry>` does);
    for a network without one, or a plain function, pass ``geometry=`` to the inferer.

    Examples::

        >>> class ThreeValidConvs:  # three unpadded 5x5 convolutions, stride 1: 6 px lost per side
        ...     border, step = 6, 1
        ...     def output_size(self, input_size):
        ...         return input_size - 12 if input_size > 12 else -1
        ...     def input_size_for_output(self, output_size):
        ...         return output_size + 12
        >>> isinstance(ThreeValidConvs(), TilingGeometry), isinstance(UNet2015Geometry(5), TilingGeometry)
        (True, True)
    """

    @property
    def border(self) -> int:
        """Pixels lost on each side of every spatial axis."""
        ...

    @property
    def step(self) -> int:
        """The grid of tile origins (the network's total downsampling factor)."""
        ...

    def output_size(self, input_size: int) -> int:
        """Output length for an input length; below 1 when ``input_size`` is not valid."""
        ...

    def input_size_for_output(self, output_size: int) -> int:
        """The smallest valid input length whose output covers ``output_size`` pixels."""
        ...


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


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class UNet2015Geometry:
    """
    The :py:class:`TilingGeometry` of a :py:class:`monai_unet2015.networks.nets.UNet2015` of ``depth``
    levels: border ``6 * 2 ** (depth - 1) - 4`` (92 for the paper's depth 5), step ``2 ** (depth - 1)`` (the
    pooling grid), valid input lengths ``2 ** (depth - 1) * n + offset`` (``16 n + 124`` from 188 for depth 5).

    Args:
        depth: number of resolution levels, ``len(features)``, ``>= 2``.
        first_width: channels of the first level (``features[0]``); when given, :py:meth:`tile_bytes` is
            :py:func:`estimate_tile_bytes`, which ``memory_budget_mb`` uses.

    Examples::

        >>> g = UNet2015Geometry(depth=5)
        >>> g.border, g.step, g.output_size(572), g.input_size_for_output(388), g.nearest_valid_sizes(570)
        (92, 16, 388, 572, (556, 572))
        >>> UNet2015Geometry.from_border(44)
        UNet2015Geometry(depth=4, first_width=None)
    """

    depth: int = 5
    first_width: int | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.depth) or self.depth < 2:
            raise ValueError(f"depth must be an int >= 2, got {self.depth!r}.")
        if self.first_width is not None and (not _is_int(self.first_width) or self.first_width < 1):
            raise ValueError(f"first_width must be a positive int or None, got {self.first_width!r}.")

    @classmethod
    def from_border(cls, border: int, first_width: int | None = None) -> UNet2015Geometry:
        """The geometry of the UNet2015 that loses ``border`` px per side (``6 * 2 ** (depth - 1) - 4``)."""
        if not _is_int(border) or border < 8:
            raise ValueError(
                f"border must be an int of the form 6 * 2**(depth - 1) - 4 (8, 20, 44, 92, ...), got {border!r}."
            )
        q, r = divmod(int(border) + 4, 6)
        if r or q & (q - 1):
            raise ValueError(
                f"border={border} is not the border of a UNet2015 (6 * 2**(depth - 1) - 4: 8, 20, 44, 92, 188, ...)."
            )
        return cls(q.bit_length(), first_width)

    @property
    def border(self) -> int:
        """Pixels lost on each side: ``6 * 2 ** (depth - 1) - 4``."""
        return unet2015_border(self.depth)

    @property
    def step(self) -> int:
        """The pooling grid: ``2 ** (depth - 1)``."""
        return 1 << (self.depth - 1)

    def output_size(self, input_size: int) -> int:
        """Output length for ``input_size``, ``-1`` when it is not valid."""
        return unet2015_output_size(int(input_size), self.depth)

    def input_size_for_output(self, output_size: int) -> int:
        """The smallest valid input length whose output covers ``output_size`` pixels."""
        return unet2015_input_size_for_output(int(output_size), self.depth)

    def nearest_valid_sizes(self, size: int) -> tuple[int, int]:
        """The nearest valid input lengths at or below and at or above ``size`` (below ``-1`` if none)."""
        return unet2015_nearest_valid_sizes(int(size), self.depth)

    def tile_bytes(self, input_size: Sequence[int], batch: int = 1) -> int | None:
        """:py:func:`estimate_tile_bytes` with ``first_width``; ``None`` when ``first_width`` is not known."""
        return None if self.first_width is None else estimate_tile_bytes(input_size, self.first_width, batch)


@dataclass(frozen=True)
class ValidPaddingGeometry:
    """
    A :py:class:`TilingGeometry` stated by its numbers: the valid input lengths are ``min_input_size``,
    ``min_input_size + step``, ``min_input_size + 2 * step``, ... and each maps to ``input - 2 * border``.

    This covers most valid-padding networks: three unpadded 5x5 convolutions with stride 1 are
    ``ValidPaddingGeometry(border=6)`` (any length from 13); a 3x3 valid convolution, a 2x2 max pooling, a
    3x3 valid convolution, a 2x upsampling and a 3x3 valid convolution are
    ``ValidPaddingGeometry(border=4, step=2, min_input_size=10)`` (even lengths from 10). For a plain
    function, pass it as ``OverlapTileInferer(geometry=...)``; a network class can return it from a
    ``tiling_geometry()`` method.

    Args:
        border: pixels lost on each side, ``>= 0``.
        step: the grid of tile origins and the spacing of the valid lengths (the network's total downsampling
            factor), ``>= 1``.
        min_input_size: the smallest valid input length, ``> 2 * border``; defaults to ``2 * border + 1``
            (one output pixel), which is right for ``step=1``; required for ``step > 1``.
        bytes_per_voxel: memory one forward pass needs per input voxel of a tile (activations, all layers);
            when given, :py:meth:`tile_bytes` is ``batch * prod(input_size) * bytes_per_voxel`` and
            ``memory_budget_mb`` can be used.

    Examples::

        >>> g = ValidPaddingGeometry(border=4, step=2, min_input_size=10)
        >>> g.output_size(30), g.output_size(31), g.input_size_for_output(5), g.nearest_valid_sizes(31)
        (22, -1, 14, (30, 32))
        >>> ValidPaddingGeometry(border=6).input_size_for_output(1)
        13
    """

    border: int
    step: int = 1
    min_input_size: int | None = None
    bytes_per_voxel: float | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.border) or self.border < 0:
            raise ValueError(f"border must be an int >= 0 (pixels lost per side), got {self.border!r}.")
        if not _is_int(self.step) or self.step < 1:
            raise ValueError(f"step must be an int >= 1 (the grid of tile origins), got {self.step!r}.")
        if self.min_input_size is None:
            if self.step > 1:
                raise ValueError(
                    f"min_input_size is required for step={self.step} (the smallest valid input length: which "
                    f"lengths pool evenly depends on the network), e.g. ValidPaddingGeometry(border={self.border}, "
                    f"step={self.step}, min_input_size=...)."
                )
            object.__setattr__(self, "min_input_size", 2 * self.border + 1)
        elif not _is_int(self.min_input_size) or self.min_input_size <= 2 * self.border:
            raise ValueError(
                f"min_input_size must be an int > 2 * border = {2 * self.border} (at least one output pixel), "
                f"got {self.min_input_size!r}."
            )
        if self.bytes_per_voxel is not None and (
            isinstance(self.bytes_per_voxel, bool) or not float(self.bytes_per_voxel) > 0
        ):
            raise ValueError(f"bytes_per_voxel must be a positive number or None, got {self.bytes_per_voxel!r}.")

    def output_size(self, input_size: int) -> int:
        """Output length ``input_size - 2 * border`` for a valid ``input_size``, else ``-1``."""
        n, first = int(input_size), int(self.min_input_size)  # type: ignore[arg-type]
        if n < first or (n - first) % self.step:
            return -1
        return n - 2 * self.border

    def input_size_for_output(self, output_size: int) -> int:
        """The smallest valid input length whose output covers ``output_size`` pixels."""
        if int(output_size) < 1:
            raise ValueError(f"output_size must be a positive integer, got {output_size}.")
        return self.nearest_valid_sizes(int(output_size) + 2 * self.border)[1]

    def nearest_valid_sizes(self, size: int) -> tuple[int, int]:
        """The nearest valid input lengths at or below and at or above ``size`` (below ``-1`` if none)."""
        size, first = int(size), int(self.min_input_size)  # type: ignore[arg-type]
        if size <= first:
            return (first if size == first else -1, first)
        below = first + (size - first) // self.step * self.step
        return (below, below if below == size else below + self.step)

    def tile_bytes(self, input_size: Sequence[int], batch: int = 1) -> int | None:
        """``batch * prod(input_size) * bytes_per_voxel``; ``None`` without ``bytes_per_voxel``."""
        if self.bytes_per_voxel is None:
            return None
        return int(math.ceil(int(batch) * math.prod(int(s) for s in input_size) * float(self.bytes_per_voxel)))


# ---------------------------------------------------------------------------------------------- helpers
def describe_geometry(geometry: TilingGeometry) -> str:
    """Short description for messages: ``depth 5`` for a UNet2015, else the geometry's repr."""
    if isinstance(geometry, UNet2015Geometry):
        return f"depth {geometry.depth}"
    return f"the geometry {geometry!r}"


def nearest_valid_sizes(geometry: TilingGeometry, size: int) -> tuple[int, int]:
    """The nearest valid input lengths of ``geometry`` at or below and at or above ``size`` (below -1 if none)."""
    own = getattr(geometry, "nearest_valid_sizes", None)
    if callable(own):
        below, above = own(size)
        return int(below), int(above)
    # the smallest valid n >= size has output n - 2 * border >= size - 2 * border
    above = int(geometry.input_size_for_output(max(int(size) - 2 * int(geometry.border), 1)))
    if above == size:
        return size, size
    below = int(size) - 1
    while below > 2 * int(geometry.border) and geometry.output_size(below) < 1:
        below -= 1
    return (below if below > 2 * int(geometry.border) else -1), above


def check_geometry(geometry: Any, name: str = "geometry") -> TilingGeometry:
    """``geometry`` if it implements :py:class:`TilingGeometry` consistently, else a clear error naming ``name``."""
    if not isinstance(geometry, TilingGeometry):
        missing = [m for m in ("border", "step", "output_size", "input_size_for_output") if not hasattr(geometry, m)]
        raise TypeError(
            f"{name} must implement TilingGeometry (border, step, output_size(input_size), "
            f"input_size_for_output(output_size)), e.g. ValidPaddingGeometry(border=...) or "
            f"net.tiling_geometry(); {type(geometry).__name__} lacks {', '.join(missing)}."
        )
    border, step = geometry.border, geometry.step
    if not _is_int(border) or border < 0:
        raise ValueError(f"{name}.border must be an int >= 0 (pixels lost per side), got {border!r}.")
    if not _is_int(step) or step < 1:
        raise ValueError(f"{name}.step must be an int >= 1 (the grid of tile origins), got {step!r}.")
    smallest = geometry.input_size_for_output(1)
    out = geometry.output_size(smallest) if _is_int(smallest) else None
    if out is None or not _is_int(out) or out < 1 or smallest - out != 2 * border:
        raise ValueError(
            f"{name} is inconsistent: input_size_for_output(1) gave {smallest!r}, whose output_size is {out!r}; "
            f"a valid input length n must map to n - 2 * border = n - {2 * border} >= 1."
        )
    return geometry

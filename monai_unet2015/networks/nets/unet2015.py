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

"""The valid-padding U-Net of Ronneberger, Fischer & Brox (MICCAI 2015) and its shape arithmetic."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, List, Optional, Tuple

import torch
import torch.nn as nn

from monai.networks.blocks import Convolution, UpSample
from monai.networks.layers.factories import Conv, Dropout, Pool
from monai.utils import ensure_tuple, look_up_option

if TYPE_CHECKING:
    from monai_unet2015.inferers.geometry import UNet2015Geometry

__all__ = [
    "UNet2015",
    "Unet2015",
    "unet2015",
    "ValidTwoConv",
    "ValidDown",
    "ValidUpCat",
    "unet2015_output_size",
    "unet2015_border",
    "unet2015_is_valid_size",
    "unet2015_valid_input_sizes",
    "unet2015_nearest_valid_sizes",
    "unet2015_input_size_for_output",
]

# --------------------------------------------------------------------------------------------------
# Shape arithmetic. Every level applies two unpadded 3x3 convolutions (each loses 2 px per axis);
# the contracting path halves with a 2x2 max pool (needs an even size), the expansive path doubles
# with a 2x2 up-convolution. The functions below are TorchScript-compatible (plain ints) so that
# the scripted network keeps its input check.
# --------------------------------------------------------------------------------------------------




def unet2015_output_size(size: int, depth: int = 5) -> int:
    """Output length along one axis for an input of length ``size``; ``-1`` when ``size`` is not valid.

    ``size`` is valid when every max pooling sees an even, positive length and the output is at least
    one pixel. ``depth`` is the number of resolution levels, ``len(features)`` of :py:class:`UNet2015`.

    Examples::

        >>> unet2015_output_size(572)
        388
        >>> unet2015_output_size(573)
        -1
    """
    s = size
    for _ in range(depth - 1):
        s = s - 4
        if s <= 0 or s % 2 != 0:
            return -1
        s = s // 2
    s = s - 4
    if s <= 0:
        return -1
    for _ in range(depth - 1):
        s = 2 * s - 4
        if s <= 0:
            return -1
    return s


def unet2015_border(depth: int = 5) -> int:
    """Pixels lost on each side of each axis: ``(input - output) / 2``, 92 for the paper's depth 5.

    The loss is the same for every valid input: ``6 * (1 << (depth - 1)) - 4``.
    """
    return 6 * (1 << (depth - 1)) - 4


def unet2015_is_valid_size(size: int, depth: int = 5) -> bool:
    """Whether ``size`` is a valid input length along one axis."""
    return unet2015_output_size(size, depth) > 0


def _smallest_valid(depth: int) -> int:
    # valid sizes form the progression ``2**(depth-1) * n + offset`` from the smallest one, which is
    # found by walking up from 1 (at most a few hundred integer steps for practical depths).
    s = 1
    while unet2015_output_size(s, depth) <= 0:
        s += 1
    return s


def unet2015_nearest_valid_sizes(size: int, depth: int = 5) -> Tuple[int, int]:
    """The nearest valid input lengths at or below and at or above ``size`` (below is ``-1`` if none).

    Examples::

        >>> unet2015_nearest_valid_sizes(570)
        (556, 572)
    """
    step = (1 << (depth - 1))
    smallest = _smallest_valid(depth)
    if size <= smallest:
        return (smallest if size == smallest else -1, smallest)
    below = smallest + ((size - smallest) // step) * step
    above = below if below == size else below + step
    return (below, above)


def unet2015_valid_input_sizes(depth: int = 5, count: int = 10, start: int = 0) -> List[int]:
    """The first ``count`` valid input lengths that are ``>= start``: ``16 n + 124`` (n >= 4) for depth 5.

    Examples::

        >>> unet2015_valid_input_sizes(count=3)
        [188, 204, 220]
    """
    first = unet2015_nearest_valid_sizes(max(start, 1), depth)[1]
    step = (1 << (depth - 1))
    return [first + i * step for i in range(count)]


def unet2015_input_size_for_output(output_size: int, depth: int = 5) -> int:
    """The smallest valid input length whose output covers at least ``output_size`` pixels.

    Examples::

        >>> unet2015_input_size_for_output(388)
        572
        >>> unet2015_input_size_for_output(389)
        588
    """
    if output_size < 1:
        raise ValueError(f"output_size must be a positive integer, got {output_size}.")
    return unet2015_nearest_valid_sizes(output_size + 2 * unet2015_border(depth), depth)[1]


def _check_spatial_size(spatial: List[int], depth: int) -> None:
    for i, s in enumerate(spatial):
        if unet2015_output_size(s, depth) <= 0:
            below, above = unet2015_nearest_valid_sizes(s, depth)
            alternatives = str(above) if below < 0 else str(below) + " or " + str(above)
            raise ValueError(
                "UNet2015: invalid input size "
                + str(spatial)
                + " (spatial axis "
                + str(i)
                + " has length "
                + str(s)
                + "). With depth "
                + str(depth)
                + " every max pooling needs an even length and the output must keep at least one pixel: "
                + "valid lengths are "
                + str((1 << (depth - 1)))
                + "*n + "
                + str(_smallest_valid(depth) % (1 << (depth - 1)))
                + " from "
                + str(_smallest_valid(depth))
                + "; nearest valid lengths: "
                + alternatives
                + "."
            )


def _center_crop(x: torch.Tensor, target: List[int]) -> torch.Tensor:
    """Crop the spatial axes of ``x`` (N, C, *spatial) centrally to ``target``; margins are even here.

    The package's one centre crop (TorchScript-compatible): the skip connections here, and targets and weight maps
    in :py:func:`monai_unet2015.losses.center_crop_to`, which checks the margins first.
    """
    for i, t in enumerate(target):
        dim = i + 2
        start = (x.shape[dim] - t) // 2
        x = x.narrow(dim, start, t)
    return x


# --------------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------------


class ValidTwoConv(nn.Sequential):
    """Two unpadded 3x3 (3x3x3) convolutions, each followed by the activation (and the optional norm)."""

    def __init__(
        self,
        spatial_dims: int,
        in_chns: int,
        out_chns: int,
        act: str | tuple,
        norm: str | tuple | None,
        bias: bool,
    ):
        """
        Args:
            spatial_dims: number of spatial dimensions.
            in_chns: number of input channels.
            out_chns: number of output channels.
            act: activation type and arguments.
            norm: feature normalization type and arguments, ``None`` for the paper's network.
            bias: whether the convolutions have a bias term.
        """
        super().__init__()
        for i, c_in in enumerate((in_chns, out_chns)):
            conv = Convolution(
                spatial_dims, c_in, out_chns, kernel_size=3, act=act, norm=norm, bias=bias, padding=0
            )
            self.add_module(f"conv_{i}", conv)


class ValidDown(nn.Sequential):
    """2x2 max pooling with stride 2, then :py:class:`ValidTwoConv`."""

    def __init__(
        self,
        spatial_dims: int,
        in_chns: int,
        out_chns: int,
        act: str | tuple,
        norm: str | tuple | None,
        bias: bool,
    ):
        super().__init__()
        pool_type: type[nn.MaxPool1d | nn.MaxPool2d | nn.MaxPool3d] = Pool[Pool.MAX, spatial_dims]
        self.add_module("max_pooling", pool_type(kernel_size=2, stride=2))
        self.add_module("convs", ValidTwoConv(spatial_dims, in_chns, out_chns, act, norm, bias))


class ValidUpCat(nn.Module):
    """2x2 up-convolution halving the channels, concatenation with the centre-cropped skip, two valid convs."""

    def __init__(
        self,
        spatial_dims: int,
        in_chns: int,
        cat_chns: int,
        out_chns: int,
        act: str | tuple,
        norm: str | tuple | None,
        bias: bool,
        up_mode: str = "deconv",
    ):
        """
        Args:
            spatial_dims: number of spatial dimensions.
            in_chns: channels of the coarser feature map.
            cat_chns: channels of the skip connection from the contracting path.
            out_chns: output channels.
            act: activation type and arguments.
            norm: feature normalization type and arguments.
            bias: whether the convolutions have a bias term.
            up_mode: ``"deconv"`` (the paper's 2x2 up-convolution), ``"pixelshuffle"`` or ``"nontrainable"``
                (upsampling followed by a 1x1 convolution), as in :py:class:`monai.networks.blocks.UpSample`.
        """
        super().__init__()
        up_chns = in_chns // 2
        self.upsample = UpSample(
            spatial_dims,
            in_chns,
            up_chns,
            scale_factor=2,
            kernel_size=2,
            mode=up_mode,
            pre_conv="default",
            interp_mode="linear" if spatial_dims == 1 else ("bilinear" if spatial_dims == 2 else "trilinear"),
            align_corners=False,
        )
        self.convs = ValidTwoConv(spatial_dims, cat_chns + up_chns, out_chns, act, norm, bias)

    def forward(self, x: torch.Tensor, x_skip: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: the coarser features, (N, in_chns, *spatial).
            x_skip: the contracting-path features, (N, cat_chns, *larger spatial), cropped centrally.
        """
        x = self.upsample(x)
        spatial: List[int] = [int(s) for s in x.shape[2:]]
        return self.convs(torch.cat([_center_crop(x_skip, spatial), x], dim=1))


# --------------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------------


class UNet2015(nn.Module):
    """
    The original U-Net with valid (unpadded) convolutions.

    Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
    MICCAI 2015, https://arxiv.org/abs/1505.04597

    Every level of the contracting path applies two unpadded 3x3 convolutions, each followed by a ReLU,
    then a 2x2 max pooling with stride 2; the channels double per level. Every level of the expansive path
    applies a 2x2 up-convolution that halves the channels, concatenates the centre-cropped feature map of
    the contracting path and applies two unpadded 3x3 convolutions with ReLU. A final 1x1 convolution maps
    to ``out_channels`` class scores (logits; apply a softmax for probabilities). Element-wise dropout is
    applied at the end of the contracting path (to the output of the bottleneck convolutions). Weights are initialised as in the
    paper from a Gaussian with standard deviation ``sqrt(2 / N)``, ``N`` the number of incoming nodes of one
    neuron (``3*3*C_in`` for a 3x3 convolution, ``C_in`` for the 2x2 stride-2 up-convolution), biases zero.

    With the defaults (2D, ``in_channels=1``, ``out_channels=2``, features 64..1024) the network has 23
    convolution layers and 31,030,658 parameters, and maps a 572x572 tile to 388x388: 92 pixels are lost on
    each side. The depth is ``len(features)``; ``spatial_dims=3`` gives the 3D network with the same
    arithmetic per axis. Valid input lengths for depth 5 are ``16 n + 124`` (from 188); see
    :py:meth:`output_size`, :py:attr:`border`, :py:meth:`valid_input_sizes` and
    :py:meth:`input_size_for_output`. An invalid input raises ``ValueError`` naming the nearest valid sizes
    before any computation.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3 (1 also works).
        in_channels: number of input channels.
        out_channels: number of output channels (classes).
        features: channels per level, from the finest to the bottleneck; its length is the depth (>= 2).
            Each level's channels must be even (the up-convolution halves them).
        dropout: dropout probability at the end of the contracting path (0 disables it).
        act: activation type and arguments, ReLU by default.
        norm: feature normalization type and arguments; ``None`` (the paper has none).
        bias: whether convolutions have a bias term.
        up_mode: ``"deconv"`` (the paper), ``"pixelshuffle"`` or ``"nontrainable"``.
        init: ``"he"`` (the paper's Gaussian initialisation) or ``None`` to keep PyTorch's defaults.

    Examples::

        >>> import torch
        >>> from monai_unet2015.networks.nets import UNet2015
        >>> net = UNet2015(spatial_dims=2, in_channels=1, out_channels=2)
        >>> net.border, net.output_size((572, 572))
        (92, (388, 388))
        >>> tiny = UNet2015(features=(4, 8, 16), dropout=0.0)
        >>> tiny(torch.zeros(1, 1, 60, 60)).shape
        torch.Size([1, 2, 20, 20])

    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 2,
        features: Sequence[int] = (64, 128, 256, 512, 1024),
        dropout: float = 0.5,
        act: str | tuple = "relu",
        norm: str | tuple | None = None,
        bias: bool = True,
        up_mode: str = "deconv",
        init: str | None = "he",
    ):
        super().__init__()
        fea = [int(f) for f in ensure_tuple(features)]
        if len(fea) < 2:
            raise ValueError(f"features must list at least 2 levels (depth >= 2), got {features}.")
        if any(f < 2 or f % 2 for f in fea[1:]):
            raise ValueError(f"features below the first level must be even and >= 2 (halved by up-convolution), got {fea}.")
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        try:
            init = look_up_option(init, ("he", None))
        except ValueError:
            raise ValueError(f"init must be 'he' or None, got {init!r}.") from None
        self.spatial_dims = spatial_dims
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.depth = len(fea)
        self.features = tuple(fea)

        self.conv_0 = ValidTwoConv(spatial_dims, in_channels, fea[0], act, norm, bias)
        self.downs = nn.ModuleList(
            [ValidDown(spatial_dims, fea[i - 1], fea[i], act, norm, bias) for i in range(1, self.depth)]
        )
        # element-wise dropout (``Dropout[DROPOUT, 1]`` is ``nn.Dropout``), as in the authors' Caffe model
        self.dropout = Dropout[Dropout.DROPOUT, 1](float(dropout)) if dropout > 0 else nn.Identity()
        self.ups = nn.ModuleList(
            [
                ValidUpCat(spatial_dims, fea[i], fea[i - 1], fea[i - 1], act, norm, bias, up_mode)
                for i in range(self.depth - 1, 0, -1)
            ]
        )
        self.final_conv = Conv[Conv.CONV, spatial_dims](fea[0], out_channels, kernel_size=1)
        if init == "he":
            self.reset_parameters()

    # ---------------------------------------------------------------- initialisation
    @torch.jit.unused
    def reset_parameters(self) -> None:
        """Gaussian initialisation with std ``sqrt(2/N)``, ``N`` the incoming nodes of one neuron; zero biases."""
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                fan_in = m.in_channels // m.groups * math.prod(m.kernel_size)
            elif isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                # each output neuron sees in_channels * prod(kernel / stride) inputs (1 position for 2x2/2)
                taps = math.prod(max(1, k // s) for k, s in zip(m.kernel_size, m.stride))
                fan_in = m.in_channels // m.groups * taps
            else:
                continue
            nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_in))
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    # ---------------------------------------------------------------- shape arithmetic
    @property
    def border(self) -> int:
        """Pixels lost on each side of every spatial axis (92 for depth 5)."""
        return unet2015_border(self.depth)

    @torch.jit.unused
    def output_size(self, input_size: int | Sequence[int]) -> tuple[int, ...]:
        """Spatial output size for ``input_size`` (an int is used for every axis); raises on invalid sizes."""
        size = self._as_size(input_size)
        _check_spatial_size(size, self.depth)
        return tuple(unet2015_output_size(s, self.depth) for s in size)

    @torch.jit.unused
    def valid_input_sizes(self, count: int = 10, start: int = 0) -> list[int]:
        """The first ``count`` valid input lengths ``>= start`` (the same for every axis)."""
        return unet2015_valid_input_sizes(self.depth, count, start)

    @torch.jit.unused
    def input_size_for_output(self, output_size: int | Sequence[int]) -> tuple[int, ...]:
        """The smallest valid input size whose output covers ``output_size`` on every axis."""
        return tuple(unet2015_input_size_for_output(s, self.depth) for s in self._as_size(output_size))

    @torch.jit.unused
    def is_valid_input_size(self, input_size: int | Sequence[int]) -> bool:
        """Whether ``input_size`` is a valid spatial input size."""
        return all(unet2015_is_valid_size(s, self.depth) for s in self._as_size(input_size))

    @torch.jit.unused
    def tiling_geometry(self) -> UNet2015Geometry:
        """
        The network's geometry for :py:class:`monai_unet2015.inferers.OverlapTileInferer`, a
        :py:class:`monai_unet2015.inferers.geometry.TilingGeometry`: per axis, :py:attr:`border`, the pooling
        grid ``2 ** (depth - 1)`` as the step of tile origins, the output length of an input length and the
        smallest valid input for an output length, and the memory estimate of ``memory_budget_mb``
        (:py:func:`monai_unet2015.inferers.estimate_tile_bytes` with ``features[0]``).

        Examples::

            >>> from monai_unet2015.networks.nets import UNet2015
            >>> g = UNet2015(features=(4, 8, 16, 32, 64)).tiling_geometry()
            >>> g, g.border, g.step, g.output_size(572), g.input_size_for_output(388)
            (UNet2015Geometry(depth=5, first_width=4), 92, 16, 388, 572)
        """
        from monai_unet2015.inferers.geometry import UNet2015Geometry  # lazy: inferers import this module

        return UNet2015Geometry(self.depth, self.features[0])

    @torch.jit.unused
    def _as_size(self, size: int | Sequence[int]) -> list[int]:
        if isinstance(size, int):
            return [size] * self.spatial_dims
        size = [int(s) for s in size]
        if len(size) != self.spatial_dims:
            raise ValueError(f"expected {self.spatial_dims} spatial lengths, got {size}.")
        return size

    # ---------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: input of shape ``(N, in_channels, *spatial)``; every spatial length must be valid.

        Returns:
            logits of shape ``(N, out_channels, *(spatial - 2 * border))``.
        """
        if x.dim() != self.spatial_dims + 2:
            raise ValueError(
                "UNet2015: expected input of shape (N, C, "
                + ", ".join(["H", "W", "D"][: self.spatial_dims])
                + ") with "
                + str(self.spatial_dims)
                + " spatial dims, got shape "
                + str(list(x.shape))
                + "."
            )
        _check_spatial_size([int(s) for s in x.shape[2:]], self.depth)
        skips: List[torch.Tensor] = []
        x = self.conv_0(x)
        for down in self.downs:
            skips.append(x)
            x = down(x)
        x = self.dropout(x)
        n = len(skips)
        for i, up in enumerate(self.ups):
            x = up(x, skips[n - 1 - i])
        return self.final_conv(x)


Unet2015 = unet2015 = UNet2015

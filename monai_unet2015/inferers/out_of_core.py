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
Overlap-tile inference over images larger than memory: a dask array in, a lazy dask array out.

The output is cut into chunks whose first pixel sits on the network's grid (a multiple of the geometry's
``step``). Each output chunk is one dask task that reads only the input blocks holding its region plus the
network's border, mirrors the image only where the region passes the true image border, and runs
:py:meth:`OverlapTileInferer.infer_window <monai_unet2015.inferers.OverlapTileInferer.infer_window>` on that
window. Because every tile sits on the same grid as in a pass over the whole image, the result equals
:py:class:`~monai_unet2015.inferers.OverlapTileInferer` on the whole in-memory image (to float rounding), for
2D images, 2D stacks segmented slice by slice and 3D volumes.

Scheduling is dask's: the threaded scheduler, or ``dask.distributed`` (a ``LocalCluster`` or a user's
cluster, see :py:mod:`monai_unet2015.inferers.zarr_job`). The network travels as one
:py:class:`NetworkLoader` per graph; each worker process builds and loads it once (on its GPU when it has
one) and reuses it for every chunk.

Needs the optional ``dask`` dependency (``pip install monai-unet2015[large]``); the package imports without it.
"""

from __future__ import annotations

import copy
import itertools
import math
import operator
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from monai.utils import optional_import

from monai_unet2015.data.zarr_io import _supported_dtype
from monai_unet2015.inferers.overlap_tile import OverlapTileInferer, _unwrap
from monai_unet2015.inferers.tta import DihedralTransform, DihedralTTAInferer, _accumulate, _dihedral_transforms
from monai_unet2015.transforms.mirror_pad import _reflect

da, has_dask = optional_import("dask.array")

__all__ = [
    "NetworkLoader",
    "ChunkLayout",
    "chunk_layout",
    "default_axes",
    "output_axes",
    "overlap_tile_dask",
    "instances_dask",
    "DaskOverlapTileInferer",
    "networks_built",
]

#: axis letters, in OME-Zarr order; the last ``spatial_dims`` axes of an array are spatial
AXIS_LETTERS = "tczyx"
_SPATIAL = "zyx"
#: default output chunk edge per spatial axis, by number of spatial dims
DEFAULT_CHUNK = {1: 65536, 2: 1024, 3: 128}

_CACHE: dict[str, torch.nn.Module] = {}
_BUILDS = [0]
_LOCK = threading.Lock()


def _require_dask() -> None:
    if not has_dask:
        raise ImportError(
            "out-of-core inference needs dask: pip install 'monai-unet2015[large]' (dask[distributed], zarr, ome-zarr)."
        )


def networks_built() -> int:
    """How many networks :py:class:`NetworkLoader` has built in this process (one per loader and process)."""
    return _BUILDS[0]


class NetworkLoader:
    """
    A network that each process (each dask worker) builds and loads once, then reuses for every chunk.

    Pickling a loader carries the recipe (a module or a factory, and a checkpoint path), never a built copy:
    :py:meth:`get` builds it on first use in a process, keyed by a token that survives pickling, loads the
    checkpoint, moves it to the device and sets eval mode.

    Args:
        network: a ``torch.nn.Module`` (copied on first use in a process) or a callable returning one, e.g.
            ``functools.partial(UNet2015, features=(16, 32, 64, 128, 256))``.
        checkpoint: optional path of a state dict (a bare state dict or one under ``"model"``, as bundles write),
            loaded with ``weights_only=True``; must be readable from every worker.
        device: ``"auto"`` (default: the process's GPU when it has one, else the CPU) or a torch device.
        threads: torch intra-op threads of the process (``torch.set_num_threads``), set by every :py:meth:`get`;
            ``None`` keeps the process's setting. Several workers on one machine should share its cores (e.g. 1
            each on 2 cores).

    Examples::

        >>> import functools
        >>> from monai_unet2015.networks.nets import UNet2015
        >>> loader = NetworkLoader(functools.partial(UNet2015, features=(4, 8, 16), dropout=0.0), device="cpu")
        >>> loader.get() is loader.get()
        True
        >>> import pickle
        >>> pickle.loads(pickle.dumps(loader)).get() is loader.get()  # same token: same process-wide network
        True
    """

    def __init__(
        self,
        network: torch.nn.Module | Callable[[], torch.nn.Module],
        checkpoint: str | os.PathLike | None = None,
        device: str | torch.device = "auto",
        threads: int | None = None,
    ) -> None:
        if not (isinstance(network, torch.nn.Module) or callable(network)):
            raise TypeError(
                f"network must be a torch.nn.Module or a callable returning one, got {type(network).__name__}."
            )
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive int or None, got {threads!r}.")
        if checkpoint is not None and not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"checkpoint {str(checkpoint)!r} is not a file.")
        self.network = network
        self.checkpoint = None if checkpoint is None else os.path.abspath(os.fspath(checkpoint))
        self.device = device if device == "auto" else torch.device(device)
        self.threads = threads
        self.token = uuid.uuid4().hex

    def resolved_device(self) -> torch.device:
        """The device :py:meth:`get` puts the network on in this process: for ``"auto"``, the CPU without a GPU;
        with several GPUs, the local dask worker ``i`` (a ``LocalCluster`` names them 0, 1, ...) takes GPU
        ``i % count``, so each worker uses its own (give workers ``CUDA_VISIBLE_DEVICES`` to choose otherwise)."""
        if self.device != "auto":
            return self.device  # type: ignore[return-value]
        if not torch.cuda.is_available():
            return torch.device("cpu")
        count, index = torch.cuda.device_count(), 0
        try:
            from distributed import get_worker

            name = get_worker().name
            index = int(name) % count if str(name).isdigit() else 0
        except (ImportError, ValueError):  # not in a dask worker
            pass
        return torch.device("cuda", index)

    def get(self) -> torch.nn.Module:
        """This process's network: built, loaded and moved on the first call, the same object afterwards."""
        if self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)  # every call: a later job may share this process's cores otherwise
        net = _CACHE.get(self.token)
        if net is not None:
            return net
        with _LOCK:
            net = _CACHE.get(self.token)
            if net is None:
                net = copy.deepcopy(self.network) if isinstance(self.network, torch.nn.Module) else self.network()
                if not isinstance(net, torch.nn.Module):
                    raise TypeError(f"the network factory returned {type(net).__name__}, not a torch.nn.Module.")
                if self.checkpoint is not None:  # a bare state dict, or one under "model" (MONAI's CheckpointSaver)
                    state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
                    if isinstance(state, dict) and isinstance(state.get("model"), dict):
                        state = state["model"]
                    net.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
                net = net.to(self.resolved_device()).eval()
                _CACHE[self.token] = net
                _BUILDS[0] += 1
        return net

    def __repr__(self) -> str:
        what = type(self.network).__name__
        return f"NetworkLoader({what}, checkpoint={self.checkpoint!r}, device={self.device!r}, threads={self.threads})"


def default_axes(ndim: int, spatial_dims: int, in_channels: int = 1) -> str:
    """
    The axes assumed for an array without axis names: ``ndim == spatial_dims`` is one image (``"yx"``,
    ``"zyx"``); one more axis is a stack of 2D slices (``"zyx"``) for a single-channel 2D network, channels
    (``"cyx"``, ``"czyx"``) otherwise. Anything else needs explicit ``axes``.

    Examples::

        >>> default_axes(3, 2), default_axes(3, 2, in_channels=3), default_axes(4, 3)
        ('zyx', 'cyx', 'czyx')
    """
    spatial = _SPATIAL[-spatial_dims:] if spatial_dims <= 3 else None
    if spatial is not None:
        if ndim == spatial_dims:
            return spatial
        if ndim == spatial_dims + 1:
            return "zyx" if spatial_dims == 2 and in_channels == 1 else "c" + spatial
    raise ValueError(
        f"cannot tell the axes of a {ndim}D array for a {spatial_dims}D network: pass axes=, one letter per axis "
        f"from {AXIS_LETTERS!r} ending in the spatial axes (e.g. 'tczyx', 'zyx' for a stack of 2D slices)."
    )


def _check_axes(axes: str | None, ndim: int, spatial_dims: int, in_channels: int) -> str:
    if axes is None:
        return default_axes(ndim, spatial_dims, in_channels)
    if not isinstance(axes, str):
        raise TypeError(f"axes must be a string of axis letters such as 'zyx', got {type(axes).__name__}.")
    axes = axes.lower()
    if len(axes) != ndim or len(set(axes)) != ndim:
        raise ValueError(f"axes {axes!r} must name each of the array's {ndim} axes once.")
    if not set(axes) <= set(AXIS_LETTERS):
        raise ValueError(f"axes {axes!r} may only use the letters {AXIS_LETTERS!r}.")
    spatial = axes[-spatial_dims:]
    if "c" in spatial or not all(a in _SPATIAL for a in spatial):
        raise ValueError(
            f"axes {axes!r}: the last {spatial_dims} axes must be spatial (z, y, x) for a {spatial_dims}D network."
        )
    return axes


def output_axes(axes: str, spatial_dims: int) -> str:
    """The output's axes for input ``axes``: the channel axis (the network's classes) before the first of z, y, x
    (OME-Zarr order), the other axes kept.

    Examples::

        >>> output_axes("zyx", 2), output_axes("tczyx", 2), output_axes("yx", 2)
        ('czyx', 'tczyx', 'cyx')
    """
    rest = axes.replace("c", "")
    first = next(i for i, a in enumerate(rest) if a in _SPATIAL)
    return rest[:first] + "c" + rest[first:]


class ChunkLayout(NamedTuple):
    """How an output is cut into chunks, see :py:func:`chunk_layout`.

    Attributes:
        image_size: spatial size of the image.
        chunks: per spatial axis, the chunk lengths (all but the last are ``chunk_size``).
        starts: per spatial axis, the first pixel of each chunk (multiples of the network's ``step``).
        border: pixels the network loses per side.
        step: the network's grid.
    """

    image_size: tuple[int, ...]
    chunks: tuple[tuple[int, ...], ...]
    starts: tuple[tuple[int, ...], ...]
    border: int
    step: int

    @property
    def num_chunks(self) -> int:
        """Number of chunks per image."""
        return math.prod(len(c) for c in self.chunks)


def chunk_layout(
    image_size: Sequence[int], geometry: Any, chunk_size: Sequence[int] | int | None = None
) -> ChunkLayout:
    """
    Output chunks of an image of spatial size ``image_size`` for a network of ``geometry``
    (:py:class:`~monai_unet2015.inferers.geometry.TilingGeometry`): ``chunk_size`` (per axis or one value, default
    :py:data:`DEFAULT_CHUNK`) rounded up to a multiple of the geometry's ``step``, so that every chunk starts
    on the network's grid; at most the image's size.

    Examples::

        >>> from monai_unet2015.inferers import UNet2015Geometry
        >>> chunk_layout((1000, 300), UNet2015Geometry(5), 500).chunks  # 500 -> 512, a multiple of 16
        ((512, 488), (300,))
    """
    size = tuple(int(s) for s in image_size)
    nsp = len(size)
    step, border = int(geometry.step), int(geometry.border)
    values = DEFAULT_CHUNK.get(nsp, 128) if chunk_size is None else chunk_size
    values = (values,) * nsp if isinstance(values, (int, np.integer)) else tuple(values)
    if len(values) != nsp:
        raise ValueError(f"chunk_size needs 1 or {nsp} values for a {nsp}D image, got {chunk_size!r}.")
    chunks, starts = [], []
    for c, s in zip(values, size):
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1:
            raise ValueError(f"chunk_size must be positive ints, got {chunk_size!r}.")
        c = min(-(-int(c) // step) * step, s)
        n = -(-s // c)
        chunks.append(tuple(min(c, s - i * c) for i in range(n)))
        starts.append(tuple(i * c for i in range(n)))
    return ChunkLayout(size, tuple(chunks), tuple(starts), border, step)


def _channels(network: Any, which: str) -> int | None:
    """The network's ``in_channels`` / ``out_channels`` attribute, else its first / last conv weight's."""
    net = _unwrap(network)
    own = getattr(net, which, None)
    if isinstance(own, int) and not isinstance(own, bool):
        return own
    if isinstance(net, torch.nn.Module):
        convs = [m for m in net.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
        if convs:
            return convs[0].in_channels if which == "in_channels" else convs[-1].out_channels
    return None


def _out_channels(network: Any, out_channels: int | None) -> int:
    if out_channels is not None:
        return int(out_channels)
    own = _channels(network, "out_channels")
    if own is None:
        raise ValueError(f"cannot read the output channels of {type(network).__name__}: pass out_channels=.")
    return own


def _in_channels(network: Any) -> int:
    own = _channels(network, "in_channels")
    return 1 if own is None else own


def _predict_chunk(
    loader: NetworkLoader | Callable,
    inferer: OverlapTileInferer | DihedralTTAInferer,
    blocks: list,
    region_start: tuple[int, ...],
    window: tuple[tuple[int, int], ...],
    image_size: tuple[int, ...],
    output_size: tuple[int, ...],
    batch_dims: int,
    dtype: Any,
    intensity: tuple[float, float] | None = None,
) -> np.ndarray:
    """One output chunk: assemble the input blocks, mirror at the true border, run the tiles. ``intensity``
    ``(low, high)`` maps the image by ``(x - low) / (high - low)`` first: ``ScaleIntensity`` for (min, max),
    ``NormalizeIntensity`` for (mean, mean + std)."""
    region = np.block(blocks) if isinstance(blocks, list) else blocks
    data = torch.from_numpy(np.ascontiguousarray(region, dtype=np.float32))
    if intensity is not None:
        low, high = float(intensity[0]), float(intensity[1])
        data = (data - low) / (high - low) if high > low else torch.zeros_like(data)
    lead = data.ndim - len(image_size)
    for i, ((first, stop), length, lo) in enumerate(zip(window, image_size, region_start)):
        idx = _reflect(torch.arange(first, stop), length) - lo
        if not (first >= 0 and stop <= length and first == lo and stop - first == data.shape[lead + i]):
            data = data.index_select(lead + i, idx)
    data = data.reshape(1, data.shape[batch_dims], *data.shape[lead:])
    network = loader.get() if isinstance(loader, NetworkLoader) else loader
    tta = inferer if isinstance(inferer, DihedralTTAInferer) else None
    inf = tta.inferer if tta is not None else inferer
    if isinstance(network, torch.nn.Module):
        dev = next(network.parameters(), torch.empty(0)).device
        if inf.sw_device is None or torch.device(inf.sw_device) != dev:
            inf = copy.copy(inf)
            inf.sw_device, inf.device = dev, torch.device("cpu")
    if tta is not None and tta.group_for(data, network) != tta.group:  # gpu_only, and the network is on a CPU
        tta = copy.copy(tta)
        tta.group = "identity"  # one pass, on the window planned for the group
    if tta is None:
        pred = inf.infer_window(data, output_size, network)
    else:
        pred = _dihedral_window(inf, tta, data, window, image_size, output_size, network)
    out = pred.detach().cpu().numpy().astype(dtype, copy=False)
    return out.reshape((1,) * batch_dims + out.shape[1:])


def _axis_map(t: DihedralTransform, nsp: int) -> list[tuple[int, bool]]:
    """For each spatial axis of ``t.forward(x)``: the axis of ``x`` it comes from and whether it is reversed."""
    axes = [(a, False) for a in range(nsp)]
    for a in t.flips:
        axes[a] = (axes[a][0], not axes[a][1])
    p, q = t.spatial_axes
    for _ in range(t.k % 4):  # torch.rot90(x, 1, [p, q]) is x.flip(q).transpose(p, q)
        axes[q] = (axes[q][0], not axes[q][1])
        axes[p], axes[q] = axes[q], axes[p]
    return axes


def _dihedral_window(
    inferer: OverlapTileInferer,
    tta: DihedralTTAInferer,
    data: torch.Tensor,
    window: tuple[tuple[int, int], ...],
    image_size: tuple[int, ...],
    output_size: tuple[int, ...],
    network: Any,
) -> torch.Tensor:
    """:py:class:`~monai_unet2015.inferers.DihedralTTAInferer` over one chunk, equal to it on the whole image:
    each flipped / rotated copy is tiled on the grid of the whole transformed image, so the chunk's window
    (``border + step`` wider than the chunk on each side) is cut where that grid puts the tiles."""
    nsp = len(image_size)
    step = int(inferer.network_geometry(network).step)
    border = int(inferer.network_geometry(network).border)
    margin = border + step
    chunk = [(w0 + margin, w0 + margin + n) for (w0, _), n in zip(window, output_size)]
    total: torch.Tensor | None = None
    transforms = _dihedral_transforms(nsp, tta.group, tta.spatial_axes)
    for t in transforms:
        moved = t.forward(data)
        starts, lengths, crops = [], [], []
        for a, flipped in _axis_map(t, nsp):
            size, (w0, w1), (c0, c1) = image_size[a], window[a], chunk[a]
            region0, (o0, o1) = (size - w1, (size - c1, size - c0)) if flipped else (w0, (c0, c1))
            aligned = o0 // step * step
            starts.append(aligned - border - region0)
            lengths.append(o1 - aligned)
            crops.append(slice(o0 - aligned, o1 - aligned))
        _, after = inferer.window_span(lengths, network)
        cut = tuple(slice(s, s + border + n + e) for s, n, e in zip(starts, lengths, after))
        pred = inferer.infer_window(moved[(slice(None), slice(None), *cut)], lengths, network)
        total = _accumulate(total, pred[(slice(None), slice(None), *crops)], t, tta.postprocess)
    assert total is not None
    return total / len(transforms)


class _Plan(NamedTuple):
    """Everything the graph needs, from :py:func:`_plan_graph`."""

    canonical: Any  # dask array (*batch, C, *spatial), chunked like the output
    layout: ChunkLayout
    batch_dims: int
    out_channels: int
    windows: tuple[tuple[tuple[int, int], ...], ...]  # per spatial axis, per chunk: (first, stop) of the window
    inferer: OverlapTileInferer | DihedralTTAInferer
    axes: str
    out_axes: str

    @property
    def canonical_axes(self) -> list[str]:
        """The axes of the graph's arrays: the other axes in input order, ``c``, the spatial axes."""
        nsp = len(self.layout.image_size)
        return [a for a in self.axes[:-nsp] if a != "c"] + ["c"] + list(self.axes[-nsp:])

    @property
    def output_order(self) -> list[int]:
        """The transpose from :py:attr:`canonical_axes` to ``out_axes``."""
        return [self.canonical_axes.index(a) for a in self.out_axes]


def _plan_graph(
    image: Any,
    network: Any,
    inferer: OverlapTileInferer | DihedralTTAInferer | None,
    axes: str | None,
    chunk_size: Sequence[int] | int | None,
    out_channels: int | None,
    spatial_dims: int | None = None,
) -> _Plan:
    _require_dask()
    if not isinstance(image, da.Array):
        raise TypeError(
            f"image must be a dask array (e.g. dask.array.from_zarr(...)), got {type(image).__name__}; "
            "for an in-memory tensor use OverlapTileInferer."
        )
    if not _supported_dtype(image.dtype):
        raise TypeError(f"image dtype {image.dtype} is not supported: give integer, float or bool voxels.")
    inferer = OverlapTileInferer() if inferer is None else inferer
    tiles = inferer.inferer if isinstance(inferer, DihedralTTAInferer) else inferer
    if not isinstance(tiles, OverlapTileInferer):
        raise TypeError(
            "inferer must be an OverlapTileInferer or a DihedralTTAInferer around one, got "
            f"{type(inferer).__name__}{'' if tiles is inferer else ' around ' + type(tiles).__name__}."
        )
    net = network.get() if isinstance(network, NetworkLoader) else network
    geometry = tiles.network_geometry(net)
    own_dims = getattr(net, "spatial_dims", None)
    nsp = spatial_dims if spatial_dims is not None else (own_dims if isinstance(own_dims, int) else 2)
    if isinstance(own_dims, int) and nsp != own_dims:
        raise ValueError(f"spatial_dims={spatial_dims} but the network is {own_dims}D.")
    if nsp not in (1, 2, 3):
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got {nsp!r}.")
    in_ch = _in_channels(net)
    axes = _check_axes(axes, image.ndim, nsp, in_ch)
    k = _out_channels(net, out_channels)
    if any(s < 1 for s in image.shape):
        raise ValueError(f"image has an empty axis: shape {image.shape}.")
    # canonical (*batch, C, *spatial): batch axes in input order, a channel axis of length 1 when absent
    batch = [i for i, a in enumerate(axes[:-nsp]) if a != "c"]
    chan = axes.find("c")
    if chan >= 0:
        x = image.transpose(batch + [chan] + list(range(image.ndim - nsp, image.ndim)))
    else:
        x = image[(slice(None),) * len(batch) + (None,)]
    if x.shape[len(batch)] != in_ch:
        raise ValueError(
            f"the network takes {in_ch} input channel(s) but the image has {x.shape[len(batch)]} "
            f"(axes {axes!r}, shape {image.shape})."
        )
    image_size = tuple(int(s) for s in x.shape[len(batch) + 1 :])
    layout = chunk_layout(image_size, geometry, chunk_size)
    x = x.rechunk((1,) * len(batch) + (in_ch,) + layout.chunks)
    # the window of a chunk (start, length) along an axis: [start - border, start + length + after(length));
    # the tiling is planned per axis, so after(length) along one axis does not depend on the other axes
    if isinstance(inferer, DihedralTTAInferer):  # each transformed copy needs the grid of its own image
        _dihedral_transforms(nsp, inferer.group, inferer.spatial_axes)  # checks the rotation plane early
        margin = layout.border + layout.step
        windows = [
            tuple((s - margin, s + n + margin) for s, n in zip(layout.starts[axis], layout.chunks[axis]))
            for axis in range(nsp)
        ]
        return _Plan(x, layout, len(batch), k, tuple(windows), inferer, axes, output_axes(axes, nsp))
    windows = []
    for axis in range(nsp):
        after = {}
        for length in set(layout.chunks[axis]):
            size = tuple(length if a == axis else layout.chunks[a][0] for a in range(nsp))
            after[length] = tiles.window_span(size, net)[1][axis]
        windows.append(
            tuple((s - layout.border, s + n + after[n]) for s, n in zip(layout.starts[axis], layout.chunks[axis]))
        )
    return _Plan(x, layout, len(batch), k, tuple(windows), inferer, axes, output_axes(axes, nsp))


def _block_ranges(window: tuple[int, int], length: int, chunks: tuple[int, ...]) -> tuple[int, list[tuple[int, slice]]]:
    """Along one axis: where the span of the (reflected) positions of ``window`` starts, and the input blocks
    holding it, each with the part of it inside the span."""
    idx = _reflect(torch.arange(window[0], window[1]), length)
    lo, hi = int(idx.min()), int(idx.max()) + 1
    bounds = np.cumsum((0,) + chunks)
    first = int(np.searchsorted(bounds, lo, side="right") - 1)
    last = int(np.searchsorted(bounds, hi - 1, side="right") - 1)
    parts = [
        (j, slice(max(lo, bounds[j]) - bounds[j], min(hi, bounds[j + 1]) - bounds[j])) for j in range(first, last + 1)
    ]
    return lo, parts


def _graph(plan: _Plan, loader: Any, name: str, task: Callable, extra: Callable[[tuple], tuple] | None = None) -> dict:
    """Legacy dask graph: one ``task`` per output chunk, reading the parts of the input blocks its window needs."""
    x, layout = plan.canonical, plan.layout
    nsp = len(layout.image_size)
    nb = plan.batch_dims
    loader_key = ("loader-" + name,)
    graph: dict = {loader_key: loader}
    per_axis = [
        [_block_ranges(w, layout.image_size[a], x.chunks[nb + 1 + a]) for w in plan.windows[a]] for a in range(nsp)
    ]
    lead = (slice(None),) * (nb + 1)
    for bidx in itertools.product(*(range(n) for n in x.numblocks[:nb])):
        for sidx in itertools.product(*(range(len(c)) for c in layout.chunks)):
            starts, parts = zip(*(per_axis[a][i] for a, i in enumerate(sidx)))

            def nest(prefix: tuple, cut: tuple, axis: int) -> Any:
                if axis == nsp:  # the part of one block, cut where the task runs (views, no copy)
                    return (operator.getitem, (x.name, *bidx, 0, *prefix), lead + cut)
                return [nest(prefix + (j,), cut + (sl,), axis + 1) for j, sl in parts[axis]]

            window = tuple(plan.windows[a][i] for a, i in enumerate(sidx))
            out_size = tuple(layout.chunks[a][i] for a, i in enumerate(sidx))
            args = (
                loader_key, plan.inferer, nest((), (), 0), tuple(starts), window, layout.image_size, out_size, nb,
            )
            graph[(name, *bidx, 0, *sidx)] = (task, *args, *(extra((bidx, sidx)) if extra else ()))
    return graph


def overlap_tile_dask(
    image: Any,
    network: NetworkLoader | torch.nn.Module | Callable,
    inferer: OverlapTileInferer | DihedralTTAInferer | None = None,
    axes: str | None = None,
    chunk_size: Sequence[int] | int | None = None,
    out_channels: int | None = None,
    dtype: Any = np.float32,
    spatial_dims: int | None = None,
    softmax: bool = False,
) -> Any:
    """
    Lazy overlap-tile inference of a dask array: the network's output as a dask array, chunk by chunk.

    Args:
        image: a dask array, e.g. ``dask.array.from_zarr(...)`` (see
            :py:func:`monai_unet2015.data.zarr_io.open_lazy` for zarr, OME-Zarr and TIFF files). Any chunking:
            it is rechunked to the output's chunks (each input block is read once per output chunk that needs it).
        network: a :py:class:`NetworkLoader` (built once per worker process), a ``torch.nn.Module`` (wrapped in
            one), or a plain callable with ``inferer`` stating its geometry and ``out_channels`` given.
        inferer: the :py:class:`~monai_unet2015.inferers.OverlapTileInferer` whose tiles each chunk runs
            (``roi_size``, ``sw_batch_size``, ``amp_dtype``, ``geometry``; default ``OverlapTileInferer()``), or a
            :py:class:`~monai_unet2015.inferers.DihedralTTAInferer` around one: each flipped / rotated copy is
            then tiled on the grid of the whole transformed image, so the result equals the TTA inferer on the
            whole image too (the window of a chunk grows by the network's ``step`` on each side).
        axes: one letter per axis of ``image`` from ``"tczyx"``, ending in the network's spatial axes; other
            axes (``t``, and ``z`` for a 2D network) are segmented image by image; default
            :py:func:`default_axes`.
        chunk_size: output chunk edge per spatial axis, rounded up to the network's grid (default 1024 in 2D,
            128 in 3D); the window a chunk reads is this plus the border on each side.
        out_channels: the network's output channels, read from it when it has ``out_channels``.
        dtype: dtype of the output chunks.
        spatial_dims: the network's spatial dims, read from its ``spatial_dims`` when it has one, else 2.
        softmax: return the softmax probabilities over the channel axis instead of the network's output (each
            chunk holds all channels, so this is exact). A mask is then ``probabilities[c] >= threshold`` (lazy
            too), instances :py:func:`instances_dask`.

    Returns:
        a dask array with axes :py:func:`output_axes` (the classes as channel axis ``c``, before z/y/x), chunked
        one image of the other axes and ``chunk_size`` along the spatial axes; equal to ``OverlapTileInferer``
        on the whole image to float rounding.

    Examples::

        >>> import dask.array as da, numpy as np, torch
        >>> from monai_unet2015.networks.nets import UNet2015
        >>> from monai_unet2015.inferers import OverlapTileInferer
        >>> net = UNet2015(features=(4, 8, 16), dropout=0.0).eval()
        >>> image = da.random.default_rng(0).random((3, 150, 97), chunks=(1, 40, 97)).astype(np.float32)
        >>> out = overlap_tile_dask(image, net, OverlapTileInferer(roi_size=64), axes="zyx", chunk_size=64)
        >>> out.shape, out.chunksize
        ((2, 3, 150, 97), (2, 1, 64, 64))
        >>> whole = OverlapTileInferer(roi_size=64)(torch.from_numpy(image.compute())[:, None], net)
        >>> bool(np.abs(out.compute() - whole.permute(1, 0, 2, 3).numpy()).max() < 1e-5)
        True
    """
    loader = network if isinstance(network, (NetworkLoader,)) or not isinstance(network, torch.nn.Module) else (
        NetworkLoader(network, device=next(network.parameters(), torch.empty(0)).device)
    )
    plan = _plan_graph(image, loader, inferer, axes, chunk_size, out_channels, spatial_dims)
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    token = loader.token if isinstance(loader, NetworkLoader) else id(loader)
    name = ("overlap-tile-softmax-" if softmax else "overlap-tile-") + tokenize(plan.canonical.name, token,
                                      plan.layout, plan.inferer.__dict__, np.dtype(dtype).str)
    dtype = np.dtype(dtype)
    nb = plan.batch_dims

    def task(*args: Any) -> np.ndarray:
        if not softmax:
            return _predict_chunk(*args, dtype)
        logits = torch.from_numpy(_predict_chunk(*args, np.float32))  # every chunk holds all the channels
        return torch.softmax(logits, dim=nb).numpy().astype(dtype, copy=False)

    graph = _graph(plan, loader, name, task)
    chunks = plan.canonical.chunks[:nb] + ((plan.out_channels,),) + plan.layout.chunks
    out = da.Array(HighLevelGraph.from_collections(name, graph, dependencies=[plan.canonical]), name, chunks, dtype)
    return out.transpose(plan.output_order)  # canonical (*batch, K, *spatial) -> output axes (c before z/y/x)


def instances_dask(
    probability: Any, instances: Callable[[torch.Tensor], Any], axes: str, channel: int = 1, spatial_dims: int = 2
) -> Any:
    """
    Lazy instance labels of a probability map from :py:func:`overlap_tile_dask` (``softmax=True``): ``instances``
    (e.g. a :py:class:`~monai_unet2015.transforms.instances.watershed.WatershedInstances`) applied to
    ``probability[channel]`` of each image, as a ``(1, *spatial)`` tensor. Instances are not merged across chunks,
    so every chunk must hold whole images along the spatial axes (``chunk_size`` at least the image's); each image
    is labelled on its own (ids restart at 1).

    Args:
        probability: a dask array with axes ``axes``, one of them ``c``.
        instances: the instance step, mapping ``(1, *spatial)`` probabilities to ``(1, *spatial)`` labels.
        axes: the axes of ``probability`` (:py:func:`output_axes` of the input's).
        channel: the foreground channel.
        spatial_dims: the network's spatial dims: the last ``spatial_dims`` axes are an image's (``z`` of a 2D
            stack is not).

    Returns:
        a uint32 dask array with the axes of ``probability`` without ``c``.

    Examples::

        >>> import dask.array as da, numpy as np
        >>> from monai_unet2015.transforms.instances.watershed import WatershedInstances
        >>> prob = np.zeros((2, 2, 30, 40), np.float32); prob[1, :, 5:25, 5:15] = 0.9; prob[1, :, 5:25, 22:35] = 0.9
        >>> step = WatershedInstances(0.5, 0.8, min_size=5)
        >>> labels = instances_dask(da.from_array(prob, chunks=(2, 1, 30, 40)), step, axes="czyx")
        >>> labels.shape, int(labels.max().compute())
        ((2, 30, 40), 2)
    """
    _require_dask()
    axes = str(axes).lower()
    if len(axes) != probability.ndim or "c" not in axes:
        raise ValueError(f"axes {axes!r} must name the {probability.ndim} axes of probability, c among them.")
    c = axes.index("c")
    if spatial_dims not in (1, 2, 3) or c >= probability.ndim - spatial_dims:
        raise ValueError(f"spatial_dims must be 1, 2 or 3 and leave c out of the last axes, got {spatial_dims!r}.")
    spatial = list(range(probability.ndim - spatial_dims, probability.ndim))
    split = [axes[i] for i in spatial if len(probability.chunks[i]) > 1]
    if split:
        raise ValueError(
            f"instances need chunks holding whole images (they are not merged across chunks), but axes {split} are "
            f"split into chunks {[probability.chunks[axes.index(a)] for a in split]}: give chunk_size >= the image."
        )
    if not 0 <= channel < probability.shape[c]:
        raise ValueError(f"channel must be one of the {probability.shape[c]} channels, got {channel!r}.")
    lead = [i for i in range(probability.ndim) if i != c and i not in spatial]

    def block(p: np.ndarray) -> np.ndarray:
        fg = np.take(p, [channel], axis=c)  # keeps the axis: (..., 1, ..., *spatial)
        fg = np.moveaxis(fg, c, 0)[0]  # (*lead, *spatial)
        out = np.zeros(fg.shape, np.uint32)
        for index in np.ndindex(*fg.shape[: len(lead)]):
            out[index] = np.asarray(instances(torch.from_numpy(np.ascontiguousarray(fg[index]))[None]))[0]
        return out

    return probability.map_blocks(block, drop_axis=c, dtype=np.uint32)


class DaskOverlapTileInferer:
    """
    :py:func:`overlap_tile_dask` as an object holding its options, for configs: ``inferer(image, network)``.

    Args:
        inferer: the tile inferer each chunk runs (default ``OverlapTileInferer()``).
        axes: see :py:func:`overlap_tile_dask`.
        chunk_size: see :py:func:`overlap_tile_dask`.
        out_channels: see :py:func:`overlap_tile_dask`.
        dtype: see :py:func:`overlap_tile_dask`.
        spatial_dims: see :py:func:`overlap_tile_dask`.
        softmax: see :py:func:`overlap_tile_dask`.

    Examples::

        >>> import dask.array as da, numpy as np
        >>> from monai_unet2015.networks.nets import UNet2015
        >>> net = UNet2015(features=(4, 8, 16), dropout=0.0).eval()
        >>> DaskOverlapTileInferer(chunk_size=64)(da.zeros((100, 100), chunks=50), net).shape
        (2, 100, 100)
    """

    def __init__(
        self,
        inferer: OverlapTileInferer | DihedralTTAInferer | None = None,
        axes: str | None = None,
        chunk_size: Sequence[int] | int | None = None,
        out_channels: int | None = None,
        dtype: Any = np.float32,
        spatial_dims: int | None = None,
        softmax: bool = False,
    ) -> None:
        self.spatial_dims = spatial_dims
        self.softmax = softmax
        self.inferer = OverlapTileInferer() if inferer is None else inferer
        self.axes = axes
        self.chunk_size = chunk_size
        self.out_channels = out_channels
        self.dtype = dtype

    def __call__(self, image: Any, network: NetworkLoader | torch.nn.Module | Callable) -> Any:
        """The lazy prediction of ``image``, see :py:func:`overlap_tile_dask`."""
        return overlap_tile_dask(
            image, network, self.inferer, self.axes, self.chunk_size, self.out_channels, self.dtype, self.spatial_dims,
            self.softmax,
        )

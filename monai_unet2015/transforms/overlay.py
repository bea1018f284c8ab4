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

"""Colour overlay of a label map on a grey image, for people to look at segmentation results.

Neighbouring instances get clearly different colours (:py:func:`adjacency_colors`: a greedy colouring of the
instances' adjacency graph with a small colour-blind-friendly palette), and the overlay can fill the
instances, outline them, or both (:py:class:`LabelOverlay`).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.data.meta_obj import get_track_meta
from monai.data.meta_tensor import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor, ensure_tuple_rep, look_up_option

__all__ = [
    "ADJACENCY_PALETTE",
    "COLOR_SCHEMES",
    "OVERLAY_MODES",
    "LabelOverlay",
    "LabelOverlayd",
    "LabelOverlayD",
    "LabelOverlayDict",
    "adjacency_colors",
    "label_adjacency",
    "label_boundaries",
    "label_colors",
]

#: The palette of :py:func:`adjacency_colors`: six Okabe-Ito colours (told apart with the common colour-vision
#: deficiencies too; black left out, it vanishes on grey, and orange, too close to vermillion and yellow):
#: vermillion, blue, yellow, bluish green, reddish purple, sky blue.
ADJACENCY_PALETTE: tuple[tuple[int, int, int], ...] = (
    (213, 94, 0),
    (0, 114, 178),
    (240, 228, 66),
    (0, 158, 115),
    (204, 121, 167),
    (86, 180, 233),
)

#: Named colour schemes of :py:class:`LabelOverlay` (``colors``).
COLOR_SCHEMES = ("adjacency", "sequential")
#: Drawing modes of :py:class:`LabelOverlay` (``mode``).
OVERLAY_MODES = ("fill", "outline", "both")


def _check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _label_ids(label: NdarrayOrTensor, name: str = "label") -> torch.Tensor:
    """``label`` as an int64 tensor (on its device), checked to hold non-negative integers."""
    label_t = convert_to_tensor(label, track_meta=False)
    if label_t.dtype == torch.bool:
        label_t = label_t.to(torch.uint8)
    if label_t.is_floating_point():
        if not torch.isfinite(label_t).all() or (label_t != torch.round(label_t)).any():
            raise ValueError(f"{name} must hold integer values (a label map), got non-integral or non-finite values.")
    elif label_t.is_complex():
        raise ValueError(f"{name} must hold integer values (a label map), got dtype {label_t.dtype}.")
    ids = label_t.to(torch.int64)
    if ids.numel() and (ids < 0).any():
        raise ValueError(f"{name} must be non-negative, got a minimum of {int(ids.min())}.")
    return ids


def label_colors(num_labels: int, device: torch.device | str | None = None) -> torch.Tensor:
    """RGB colours in [0, 255] for labels ``0..num_labels`` (row 0, the background, is unused).

    Label 1 is red; higher labels walk around the hue circle by the golden angle, so consecutive ids get
    different hues and every id keeps its colour whatever the number of labels. Instances that touch need not
    have consecutive ids, so their colours can be close: :py:func:`adjacency_colors` makes sure they differ.

    Examples::

        >>> label_colors(2)[1:].tolist()
        [[255.0, 0.0, 0.0], [0.0, 255.0, 74.0]]
    """
    k = torch.arange(num_labels + 1, dtype=torch.float64, device=device)
    hue = ((k - 1) * 0.381966011250105 + 0.0) % 1.0 * 6.0  # golden angle, in sextants
    # HSV -> RGB with s = v = 1 (vectorised)
    rgb = torch.stack([(hue + n) % 6.0 for n in (5.0, 3.0, 1.0)], dim=-1)
    rgb = 1.0 - torch.clamp(torch.minimum(rgb, 4.0 - rgb), 0.0, 1.0)
    return torch.round(rgb * 255.0).to(torch.float32)


def _spatial_shape(ids: torch.Tensor) -> tuple[int, ...]:
    """The spatial shape of a label map given as ``(*spatial)`` or ``(1, *spatial)``, 1 to 3 spatial axes."""
    shape = tuple(ids.shape)
    spatial = shape[1:] if len(shape) >= 2 and shape[0] == 1 else shape  # a (1, *spatial) channel, or Z = 1
    if not 1 <= len(spatial) <= 3:
        raise ValueError(f"label must have 1 to 3 spatial axes, (*spatial) or (1, *spatial), got shape {shape}.")
    return spatial


def _max_pool(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Maximum over the ``(2 * radius + 1)``-cube around each pixel of ``x`` ``(*spatial)``; outside is ignored.

    Separable (the maximum over a box is the maximum of the maxima along its axes), and along each axis a
    sparse table: maxima over windows of 1, 2, 4, ... pixels from shifted copies, then the window of
    ``w = 2 * radius + 1`` as the maximum of two overlapping power-of-two windows. A few element-wise
    ``torch.maximum`` per axis, several times faster than ``max_pool`` on the CPU, on any device.
    """
    width = 2 * radius + 1
    out = x
    for axis in range(x.ndim):
        pad = torch.full_like(out.narrow(axis, 0, 1), -float("inf")).expand(
            *[radius if a == axis else n for a, n in enumerate(out.shape)]
        )
        m = torch.cat([pad, out, pad], dim=axis)
        length = m.shape[axis]
        covered = 1
        while 2 * covered <= width:  # m[i] = max over [i, i + 2 covered) after this step
            m = torch.maximum(m.narrow(axis, 0, length - covered), m.narrow(axis, covered, length - covered))
            length -= covered
            covered *= 2
        rest = width - covered  # the window [i, i + width) = [i, i + covered) and [i + rest, i + rest + covered)
        n = out.shape[axis]
        out = torch.maximum(m.narrow(axis, 0, n), m.narrow(axis, rest, n))
    return out


def _exact_float(ids: torch.Tensor) -> torch.dtype:
    """A float dtype that holds every id of ``ids`` exactly (pooling needs floats)."""
    return torch.float32 if (not ids.numel() or int(ids.max()) < 2**24) else torch.float64


def label_adjacency(label: NdarrayOrTensor, neighbourhood: int = 5) -> torch.Tensor:
    """Pairs of different labels ``a < b`` (both > 0) that come within ``neighbourhood`` pixels of each other.

    Labels ``a`` and ``b`` are adjacent when a pixel of ``a`` and a pixel of ``b`` are at most ``neighbourhood``
    pixels apart along every axis (Chebyshev distance): ``1`` means touching, diagonals included
    (8-neighbours in 2D, 26 in 3D); ``2`` also pairs instances separated by a one-pixel gap, and so on.
    Instances a few pixels apart look like neighbours, hence the default of 5.
    Vectorised on the label's device: max and min poolings find the boundary pixels with another label in
    their neighbourhood (the closest pixels of two labels lie on both boundaries), then a gather compares each
    of them with the pixels at all the offsets of half the neighbourhood, ``((2 n + 1)^d - 1) / 2`` of them.

    Args:
        label: label map ``(*spatial)`` or channel-first ``(1, *spatial)``, 1 to 3 spatial axes, with
            non-negative integer values (0 is background), numpy or torch, any device.
        neighbourhood: the largest per-axis distance in pixels at which two labels are neighbours, >= 1.

    Returns:
        ``(E, 2)`` int64 tensor on the label's device, each row ``(a, b)`` with ``a < b``, rows unique and sorted.

    Examples::

        >>> import torch
        >>> label = torch.tensor([[1, 1, 0, 2],
        ...                       [1, 1, 0, 2],
        ...                       [0, 0, 0, 0],
        ...                       [3, 0, 0, 0]])
        >>> label_adjacency(label, neighbourhood=1).tolist()
        []
        >>> label_adjacency(label, neighbourhood=2).tolist()
        [[1, 2], [1, 3]]
    """
    n = _check_count(neighbourhood, "neighbourhood")
    ids = _label_ids(label)
    spatial = _spatial_shape(ids)
    ids = ids.reshape(spatial)
    none = torch.zeros((0, 2), dtype=torch.int64, device=ids.device)
    if not ids.numel():
        return none
    # candidates: boundary pixels (another value among their 3^d neighbours) with another label > 0 within
    # the neighbourhood; the closest pixels of two labels are on both labels' boundaries, so these suffice
    x = ids.to(_exact_float(ids))
    fg = ids > 0
    edge = fg & ((_max_pool(x, 1) != x) | (-_max_pool(-x, 1) != x))
    highest = _max_pool(x, n)
    lowest = -_max_pool(torch.where(fg, -x, torch.full_like(x, -float("inf"))), n)
    where = torch.nonzero(edge & ((highest > x) | (lowest < x)))  # (C, ndim)
    if not len(where):
        return none
    # the candidates' neighbours, through flat indices into the label map padded by n with background
    padded = F.pad(ids, (n, n) * len(spatial))
    strides = torch.tensor(padded.stride(), device=ids.device)
    offsets = [o for o in itertools.product(range(-n, n + 1), repeat=len(spatial)) if o > (0,) * len(spatial)]
    # (a, b) at +o is (b, a) at -o and both pixels are candidates: half the offsets suffice
    shifts = (torch.tensor(offsets, device=ids.device) * strides).sum(1)
    centre = ((where + n) * strides).sum(1)
    flat = padded.reshape(-1)
    big = int(ids.max()) + 1
    found = []
    step = max(1, 2**24 // len(offsets))
    for start in range(0, len(centre), step):  # chunks bound the memory of the gather
        c = centre[start : start + step]
        a = flat[c][:, None]
        b = flat[c[:, None] + shifts[None, :]]
        pick = (b > 0) & (b != a)
        lo, hi = torch.minimum(a, b)[pick], torch.maximum(a, b)[pick]
        if big < 2**31:
            found.append(torch.unique(lo * big + hi))
        else:
            found.append(torch.unique(torch.stack([lo, hi], 1), dim=0))
    if big < 2**31:
        keys = torch.unique(torch.cat(found))
        return torch.stack([keys // big, keys % big], 1)
    return torch.unique(torch.cat(found), dim=0)


def _greedy_colouring(nodes: list[int], pairs: list[tuple[int, int]], num_colours: int) -> dict[int, int]:
    """Palette index per node: greedy colouring of the graph in smallest-last order (see adjacency_colors)."""
    index = {v: i for i, v in enumerate(nodes)}
    neighbours: list[list[int]] = [[] for _ in nodes]
    for a, b in pairs:
        neighbours[index[a]].append(index[b])
        neighbours[index[b]].append(index[a])
    # smallest-last order: repeatedly remove a node of smallest remaining degree (ties: smallest id)
    degree = [len(x) for x in neighbours]
    heap = [(d, i) for i, d in enumerate(degree)]
    heapq.heapify(heap)
    removed = [False] * len(nodes)
    removal = []
    while heap:
        d, i = heapq.heappop(heap)
        if removed[i] or d != degree[i]:
            continue
        removed[i] = True
        removal.append(i)
        for j in neighbours[i]:
            if not removed[j]:
                degree[j] -= 1
                heapq.heappush(heap, (degree[j], j))
    colour = [-1] * len(nodes)
    total = [0] * num_colours
    for i in reversed(removal):  # colour the last removed first
        used = [0] * num_colours
        for j in neighbours[i]:
            if colour[j] >= 0:
                used[colour[j]] += 1
        # a free colour (else the one fewest neighbours have), the least used so far, the first on ties
        c = min(range(num_colours), key=lambda k: (used[k], total[k], k))
        colour[i] = c
        total[c] += 1
    return {v: colour[i] for i, v in enumerate(nodes)}


def adjacency_colors(
    label: NdarrayOrTensor,
    neighbourhood: int = 5,
    palette: Sequence[Sequence[float]] | NdarrayOrTensor = ADJACENCY_PALETTE,
) -> torch.Tensor:
    """RGB table ``(max_label + 1, 3)`` in [0, 255] that gives neighbouring labels different palette colours.

    The rule (deterministic, it depends only on the label map):

    1. the graph: one node per label > 0 present in ``label``, an edge between labels that come within
       ``neighbourhood`` pixels of each other (:py:func:`label_adjacency`);
    2. the order: smallest-last, i.e. repeatedly remove a node of smallest remaining degree (ties: the smallest
       label) and colour in the reverse order of removal;
    3. each label takes, of the palette colours that none of its already coloured neighbours has, the one
       given to the fewest labels so far (the first in the palette on ties), so that the colours vary over
       the image; where every colour is taken, the colour the fewest of those neighbours have (then the same
       ties).

    The colouring is proper (no two neighbours share a colour) whenever the graph's degeneracy (the largest
    minimum degree of its subgraphs) is below the palette size: the 6 colours of :py:data:`ADJACENCY_PALETTE`
    suffice for every planar graph (degeneracy <= 5), such as connected 2D instances that meet along their
    edges, and in practice for cells and nuclei at the default neighbourhood (tested). Row 0 (background) and
    rows of labels absent from the map hold the first colour; they are not drawn.

    Args:
        label: label map ``(*spatial)`` or ``(1, *spatial)``, 1 to 3 spatial axes, non-negative integers.
        neighbourhood: see :py:func:`label_adjacency`.
        palette: ``(P, 3)`` RGB colours in [0, 255], P >= 1; default :py:data:`ADJACENCY_PALETTE`.

    Returns:
        float32 tensor on the label's device.

    Examples::

        >>> import torch
        >>> label = torch.zeros(6, 9, dtype=torch.long)
        >>> label[1:5, 1:4], label[1:5, 4:7], label[2:4, 8] = 1, 2, 3  # 1 touches 2; 3 is 2 pixels from 2
        >>> adjacency_colors(label, neighbourhood=1)[1:].tolist()  # blue, vermillion, yellow
        [[0.0, 114.0, 178.0], [213.0, 94.0, 0.0], [240.0, 228.0, 66.0]]
        >>> adjacency_colors(label, neighbourhood=2)[1:].tolist()  # yellow, blue, vermillion
        [[240.0, 228.0, 66.0], [0.0, 114.0, 178.0], [213.0, 94.0, 0.0]]
    """
    table = _palette(palette, "palette", "a (P, 3) table of RGB colours in [0, 255] with P >= 1", minimum_rows=1)
    ids = _label_ids(label)
    pairs = label_adjacency(ids, neighbourhood)
    present = torch.unique(ids)
    nodes = present[present > 0].tolist()
    colour = _greedy_colouring(nodes, [tuple(p) for p in pairs.tolist()], table.shape[0])
    num = int(present.max()) if present.numel() else 0
    index = torch.zeros(num + 1, dtype=torch.int64)
    if nodes:
        index[torch.tensor(nodes)] = torch.tensor([colour[v] for v in nodes])
    return table[index].to(ids.device)


def label_boundaries(label: NdarrayOrTensor, width: int = 1) -> torch.Tensor:
    """Inner boundaries of the labels: pixels of a label > 0 within ``width`` pixels of a pixel of another label.

    "Within ``width`` pixels" is per axis (Chebyshev distance), background included as "another label";
    outside the image does not count, so objects cut by the border are open there. ``width=1`` equals
    ``skimage.segmentation.find_boundaries(label, connectivity=label.ndim, mode="inner")``. Vectorised with
    a max and a min pooling of size ``2 * width + 1``; 1 to 3 spatial axes, any device.

    Args:
        label: label map ``(*spatial)`` or channel-first ``(1, *spatial)`` with non-negative integer values.
        width: outline width in pixels, >= 1.

    Returns:
        bool tensor of the label's shape, on its device.

    Examples::

        >>> import torch
        >>> label = torch.zeros(1, 5, 6, dtype=torch.long)
        >>> label[0, 1:4, 1:5] = 1
        >>> label_boundaries(label)[0].int().tolist()
        [[0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 0], [0, 1, 0, 0, 1, 0], [0, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]]
    """
    w = _check_count(width, "width")
    ids = _label_ids(label)
    x = ids.reshape(_spatial_shape(ids)).to(_exact_float(ids))
    hi = _max_pool(x, w)  # pooling ignores the outside: the image border is no boundary
    lo = -_max_pool(-x, w)
    return ((x > 0) & ((hi != x) | (lo != x))).reshape(ids.shape)


def _palette(colors, name: str, expected: str, minimum_rows: int) -> torch.Tensor:
    """``colors`` as a float32 ``(rows, 3)`` CPU tensor in [0, 255], else a ValueError saying ``expected``."""
    try:
        if isinstance(colors, torch.Tensor):
            colors = colors.detach().cpu().numpy()
        table = torch.as_tensor(np.asarray(colors, dtype=np.float32))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {expected}, got {colors!r}.") from None
    if table.ndim != 2 or table.shape[1] != 3 or table.shape[0] < minimum_rows:
        raise ValueError(f"{name} must be {expected}, got shape {tuple(table.shape)}.")
    if not torch.isfinite(table).all() or table.min() < 0 or table.max() > 255:
        raise ValueError(f"{name} must be {expected}, got values outside [0, 255].")
    return table


class LabelOverlay(Transform):
    """
    Draw a label map on a grey image as an RGB image, e.g. to look at predicted instances with a PNG viewer.

    The image is scaled to [0, 255] by its own minimum and maximum and every label ``k > 0`` gets a colour:

    - ``colors="adjacency"`` (default): neighbouring instances (within ``neighbourhood`` pixels) get different
      colours of :py:data:`ADJACENCY_PALETTE`, chosen by the greedy colouring of :py:func:`adjacency_colors`,
      so merges and splits stay visible; a binary mask is drawn in the first colour (vermillion);
    - ``colors="sequential"``: colour by id, :py:func:`label_colors` (label 1 red, then golden-angle hues);
    - an explicit ``(K + 1, 3)`` RGB table in [0, 255] indexed by label (row 0 unused); labels beyond it cycle
      through rows ``1..K``.

    and is drawn by ``mode``:

    - ``"fill"``: every labelled pixel blended, ``out = (1 - alpha) * grey + alpha * colour``;
    - ``"outline"``: only the instances' inner boundaries (:py:func:`label_boundaries`, ``width`` pixels),
      opaque; the rest is the grey image;
    - ``"both"``: the fill with ``alpha`` and the opaque outline on top.

    Label 0 keeps the grey value. The output is channel-first ``(3, *spatial)`` float32 with integral values in
    [0, 255] and the image's metadata; write it with ``SaveImaged(..., output_ext=".png", output_dtype=np.uint8)``.

    Args:
        alpha: opacity of the fill (modes ``"fill"`` and ``"both"``), in [0, 1].
        colors: ``"adjacency"``, ``"sequential"`` or an RGB table, see above.
        mode: ``"fill"``, ``"outline"`` or ``"both"``.
        width: outline width in pixels (modes ``"outline"`` and ``"both"``), >= 1.
        neighbourhood: for ``colors="adjacency"``: labels at most this many pixels apart (per axis) count as
            neighbours, >= 1 (1: touching).

    Examples::

        >>> import torch
        >>> image = torch.linspace(0, 1, 16).reshape(1, 4, 4)
        >>> label = torch.zeros(1, 4, 4); label[0, :2, :2] = 1
        >>> out = LabelOverlay(alpha=0.5, colors="sequential")(image, label)
        >>> out.shape, out[:, 0, 0].tolist(), out[:, 3, 3].tolist()
        (torch.Size([3, 4, 4]), [128.0, 0.0, 0.0], [255.0, 255.0, 255.0])
        >>> two = torch.zeros(1, 6, 8); two[0, 1:5, 1:4], two[0, 1:5, 4:7] = 1, 2  # two touching squares
        >>> out = LabelOverlay(mode="outline")(torch.zeros(1, 6, 8), two)
        >>> out[:, 2, 3].tolist(), out[:, 2, 4].tolist(), out[:, 2, 2].tolist()  # two colours meet, inside grey
        ([0.0, 114.0, 178.0], [213.0, 94.0, 0.0], [0.0, 0.0, 0.0])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        alpha: float = 0.4,
        colors: str | Sequence[Sequence[float]] | NdarrayOrTensor = "adjacency",
        mode: str = "fill",
        width: int = 1,
        neighbourhood: int = 5,
    ) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}.")
        self.alpha = float(alpha)
        expected = f"one of {COLOR_SCHEMES} or a (K + 1, 3) RGB table in [0, 255] with K >= 1"
        if isinstance(colors, str):
            try:
                colors = look_up_option(colors, COLOR_SCHEMES)
            except ValueError:
                raise ValueError(f"colors must be {expected}, got {colors!r}.") from None
        else:
            colors = _palette(colors, "colors", expected, minimum_rows=2)
        self.colors = colors
        try:
            self.mode = look_up_option(mode, OVERLAY_MODES)
        except ValueError:
            raise ValueError(f"mode must be one of {OVERLAY_MODES}, got {mode!r}.") from None
        self.width = _check_count(width, "width")
        self.neighbourhood = _check_count(neighbourhood, "neighbourhood")

    def _table(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The colour table and the ids that index it (cycled through an explicit table)."""
        if isinstance(self.colors, torch.Tensor):
            k = self.colors.shape[0] - 1
            return self.colors.to(ids.device), torch.where(ids > 0, (ids - 1) % k + 1, ids)
        if self.colors == "sequential":
            num = int(ids.max()) if ids.numel() else 0
            return label_colors(max(num, 1), device=ids.device), ids
        return adjacency_colors(ids, self.neighbourhood), ids

    def __call__(self, img: NdarrayOrTensor, label: NdarrayOrTensor) -> NdarrayOrTensor:
        """
        Args:
            img: grey image ``(1, *spatial)`` (channel-first, one channel).
            label: label map ``(1, *spatial)``, non-negative integer values (floats holding integers accepted).
        """
        image_t = convert_to_tensor(img, track_meta=False, dtype=torch.float32)
        if image_t.ndim < 2 or image_t.shape[0] != 1:
            raise ValueError(
                f"img must be channel-first with one channel, (1, *spatial), got shape {tuple(image_t.shape)}."
            )
        label_t = convert_to_tensor(label, track_meta=False).to(image_t.device)
        if tuple(label_t.shape) != tuple(image_t.shape):
            raise ValueError(
                f"label must have the image's shape {tuple(image_t.shape)}, got {tuple(label_t.shape)}."
            )
        ids = _label_ids(label_t)
        if (self.mode != "fill" or isinstance(self.colors, str) and self.colors == "adjacency") and ids.ndim > 4:
            scheme = self.colors if isinstance(self.colors, str) else "table"
            raise ValueError(
                f"mode {self.mode!r} with colors {scheme!r} needs 1 to 3 spatial axes, (1, *spatial), "
                f"got shape {tuple(ids.shape)}."
            )
        lo, hi = image_t.min(), image_t.max()
        grey = (image_t - lo) / (hi - lo) * 255.0 if hi > lo else torch.zeros_like(image_t)
        table, rows = self._table(ids)
        colour = table[rows[0]].movedim(-1, 0)  # (3, *spatial)
        out = grey.expand(3, *grey.shape[1:])
        if self.mode in ("fill", "both"):  # element-wise selections (no boolean indexing): one pass each
            out = torch.where(ids > 0, (1.0 - self.alpha) * out + self.alpha * colour, out)
        if self.mode in ("outline", "both"):
            out = torch.where(label_boundaries(ids, self.width), colour, out)
        out = torch.round(out).clamp_(0.0, 255.0)
        if isinstance(img, MetaTensor) and get_track_meta():
            return MetaTensor(out, meta=img.meta)
        return convert_to_dst_type(out, img, dtype=torch.float32)[0]


class LabelOverlayd(MapTransform):
    """
    Dictionary-based :py:class:`LabelOverlay`: for every label key, draw it on ``data[image_key]`` and store
    the RGB overlay under the matching ``overlay_keys`` entry (default ``"{key}_overlay"``).

    Args:
        keys: label keys.
        image_key: key of the grey image.
        overlay_keys: output keys, one per label key; default ``"{key}_overlay"``.
        alpha: opacity of the fill, in [0, 1].
        colors: ``"adjacency"`` (default), ``"sequential"`` or an RGB table, see :py:class:`LabelOverlay`.
        mode: ``"fill"`` (default), ``"outline"`` or ``"both"``.
        width: outline width in pixels.
        neighbourhood: distance in pixels at which labels count as neighbours for ``colors="adjacency"``.
        allow_missing_keys: don't raise for missing label keys.

    Examples::

        >>> import torch
        >>> d = {"image": torch.rand(1, 8, 8), "mask": torch.ones(1, 8, 8)}
        >>> LabelOverlayd("mask", overlay_keys="overlay", mode="both")(d)["overlay"].shape
        torch.Size([3, 8, 8])
    """

    backend = LabelOverlay.backend

    def __init__(
        self,
        keys: KeysCollection,
        image_key: str = "image",
        overlay_keys: KeysCollection | None = None,
        alpha: float = 0.4,
        colors: str | Sequence[Sequence[float]] | NdarrayOrTensor = "adjacency",
        mode: str = "fill",
        width: int = 1,
        neighbourhood: int = 5,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        if overlay_keys is None:
            self.overlay_keys = tuple(f"{k}_overlay" for k in self.keys)
        else:
            self.overlay_keys = ensure_tuple_rep(overlay_keys, len(self.keys))
        self.overlay = LabelOverlay(alpha=alpha, colors=colors, mode=mode, width=width, neighbourhood=neighbourhood)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        if self.image_key not in d:
            raise KeyError(f"image_key {self.image_key!r} not in the data; keys: {list(d)}.")
        for key, out_key in self.key_iterator(d, self.overlay_keys):
            d[out_key] = self.overlay(d[self.image_key], d[key])
        return d


LabelOverlayD = LabelOverlayDict = LabelOverlayd

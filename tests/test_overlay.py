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

"""The PNG overlay (``monai_unet2015.transforms.overlay``): adjacency colours, outlines, options and errors."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai_unet2015.transforms.overlay import (
    ADJACENCY_PALETTE,
    LabelOverlay,
    LabelOverlayd,
    LabelOverlayD,
    LabelOverlayDict,
    adjacency_colors,
    label_adjacency,
    label_boundaries,
    label_colors,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
REAL_MAPS = [DATA / "dic-hela" / "01_GT" / "SEG" / "man_seg002.tif", DATA / "dsb2018-nuclei" / "mask2d.tif"]
PALETTE = np.asarray(ADJACENCY_PALETTE, dtype=np.float32)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _slow_adjacency(label: np.ndarray, n: int) -> list[tuple[int, int]]:
    """Reference: every pair of labelled pixels, one by one, within Chebyshev distance ``n``."""
    points = [(p, int(label[p])) for p in itertools.product(*map(range, label.shape)) if label[p] > 0]
    pairs = set()
    for (p, a), (q, b) in itertools.combinations(points, 2):
        if a != b and max(abs(i - j) for i, j in zip(p, q)) <= n:
            pairs.add((min(a, b), max(a, b)))
    return sorted(pairs)


def _slow_boundaries(label: np.ndarray, width: int) -> np.ndarray:
    """Reference: a labelled pixel with a pixel of another value (inside the image) within ``width``."""
    out = np.zeros(label.shape, bool)
    for p in itertools.product(*map(range, label.shape)):
        if label[p] == 0:
            continue
        window = tuple(slice(max(0, i - width), i + width + 1) for i in p)
        out[p] = (label[window] != label[p]).any()
    return out


def _assert_proper(label: np.ndarray, table: np.ndarray, pairs: np.ndarray) -> None:
    assert len(pairs) > 0
    same = (table[pairs[:, 0]] == table[pairs[:, 1]]).all(1)
    assert not same.any(), f"neighbours sharing a colour: {pairs[same].tolist()}"
    ids = np.unique(label)
    ids = ids[ids > 0]
    # every instance in a palette colour
    assert (table[ids][:, None, :] == PALETTE[None]).all(-1).any(-1).all()


# ------------------------------------------------------------------------------------------------ adjacency
def test_two_touching_squares_and_a_third_neighbour_get_different_colours():
    label = np.zeros((1, 12, 16), np.int64)
    label[0, 2:8, 2:7] = 1  # two touching squares
    label[0, 2:8, 7:12] = 2
    label[0, 8:11, 5:9] = 3  # touches both
    label[0, 2:5, 14:16] = 4  # 2 pixels from square 2: a neighbour at the default neighbourhood only
    pairs = label_adjacency(label, neighbourhood=1).tolist()
    assert pairs == [[1, 2], [1, 3], [2, 3]]
    assert label_adjacency(label).tolist() == [[1, 2], [1, 3], [2, 3], [2, 4]]
    table = adjacency_colors(label).numpy()
    colours = {k: tuple(table[k]) for k in (1, 2, 3, 4)}
    assert len({colours[1], colours[2], colours[3]}) == 3 and colours[4] != colours[2]
    out = LabelOverlay(alpha=1.0)(np.zeros((1, 12, 16), np.float32), label)
    for k in (1, 2, 3, 4):  # opaque fill: each instance in its table colour
        inside = np.argwhere(label[0] == k)[0]
        np.testing.assert_array_equal(out[:, inside[0], inside[1]], table[k])
    # the sequential hues of ids 1 and 2 are not the point: any ids work the same
    relabelled = np.where(label > 0, label * 10 + 7, 0)
    t2 = adjacency_colors(relabelled).numpy()
    assert len({tuple(t2[17]), tuple(t2[27]), tuple(t2[37])}) == 3 and tuple(t2[47]) != tuple(t2[27])


@pytest.mark.parametrize("seed", range(12))
def test_adjacency_equals_slow_reference(seed):
    rng = np.random.default_rng(seed)
    ndim = 1 + seed % 3
    shape = tuple(int(s) for s in rng.integers(3, (40, 11, 6)[ndim - 1], size=ndim))
    label = rng.integers(1, 7, size=shape) * (rng.random(shape) < 0.25)
    for n in (1, 2, 3):
        got = [tuple(p) for p in label_adjacency(label, neighbourhood=n).tolist()]
        assert got == _slow_adjacency(label, n), (shape, n)
        # a leading channel of size 1 changes nothing
        assert label_adjacency(label[None], neighbourhood=n).tolist() == [list(p) for p in got]


def test_adjacency_edge_cases():
    assert label_adjacency(np.zeros((4, 4), int)).shape == (0, 2)
    assert label_adjacency(np.ones((4, 4), int)).shape == (0, 2)  # one label: no pairs
    # distance along a diagonal counts per axis (Chebyshev)
    label = np.zeros((6, 6), int)
    label[0, 0], label[3, 3] = 1, 2
    assert label_adjacency(label, 2).tolist() == [] and label_adjacency(label, 3).tolist() == [[1, 2]]
    # large ids (beyond int32 keys) work too
    big = np.zeros((3, 3), np.int64)
    big[0, 0], big[0, 1] = 2**40, 2**40 + 1
    assert label_adjacency(big, 1).tolist() == [[2**40, 2**40 + 1]]


# ------------------------------------------------------------------------------------------------ colouring
@pytest.mark.parametrize("path", REAL_MAPS, ids=["dic-hela-man_seg002", "dsb2018-mask2d"])
@pytest.mark.parametrize("neighbourhood", [1, 5])
def test_greedy_colouring_is_proper_on_real_instance_maps(path, neighbourhood):
    tifffile = pytest.importorskip("tifffile")
    if not path.is_file():
        pytest.skip(f"{path} not available")
    label = tifffile.imread(path).astype(np.int64)
    pairs = label_adjacency(label, neighbourhood).numpy()
    table = adjacency_colors(label, neighbourhood).numpy()
    assert table.shape == (label.max() + 1, 3)
    _assert_proper(label, table, pairs)
    np.testing.assert_array_equal(adjacency_colors(label, neighbourhood).numpy(), table)  # deterministic
    # neighbours differ in the drawn overlay too
    out = LabelOverlay(alpha=1.0, neighbourhood=neighbourhood)(np.zeros((1, *label.shape), np.float32), label[None])
    for a, b in pairs[:20]:
        pa, pb = np.argwhere(label == a)[0], np.argwhere(label == b)[0]
        assert (out[:, pa[0], pa[1]] != out[:, pb[0], pb[1]]).any()


def test_greedy_colouring_when_the_palette_is_too_small():
    # three mutually touching labels, two colours: 1 and 2 differ, 3 takes the colour fewest neighbours have
    label = np.array([[1, 1, 2, 2], [3, 3, 3, 3]])
    two = [[255, 0, 0], [0, 0, 255]]
    table = adjacency_colors(label, 1, palette=two).tolist()
    assert table[1] != table[2] and table[3] in two
    three = adjacency_colors(label, 1, palette=two + [[0, 255, 0]]).numpy()
    assert len({tuple(three[k]) for k in (1, 2, 3)}) == 3
    # a single-colour palette colours everything with it
    assert adjacency_colors(label, 1, palette=[[9, 9, 9]])[1:].tolist() == [[9.0, 9.0, 9.0]] * 3


def test_isolated_instances_vary_and_a_binary_mask_gets_the_first_colour():
    label = np.zeros((5, 40), np.int64)
    for k in range(6):
        label[1:4, 6 * k + 1 : 6 * k + 3] = k + 1  # six instances, 4 pixels apart
    table = adjacency_colors(label, neighbourhood=2).numpy()
    assert len({tuple(table[k]) for k in range(1, 7)}) == 6  # no neighbours: every colour once
    mask = (label > 0).astype(np.float32)
    np.testing.assert_array_equal(adjacency_colors(mask)[1].numpy(), PALETTE[0])


# ------------------------------------------------------------------------------------------------ outline
def test_outline_pixels_are_exactly_the_boundary_of_a_hand_made_case():
    label = np.zeros((1, 7, 9), np.int64)
    label[0, 1:6, 1:4] = 1  # two touching rectangles
    label[0, 1:6, 4:8] = 2
    label[0, 5:7, 8] = 3  # a bar cut by the image border
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 0, 1, 1, 0, 0, 1, 0],
            [0, 1, 0, 1, 1, 0, 0, 1, 0],
            [0, 1, 0, 1, 1, 0, 0, 1, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 1],
            [0, 0, 0, 0, 0, 0, 0, 0, 1],
        ],
        bool,
    )
    np.testing.assert_array_equal(label_boundaries(label)[0].numpy(), expected)
    image = np.full((1, 7, 9), 3.0, np.float32)
    image[0, 0, 0] = 0.0  # grey 255 everywhere but one pixel
    out = LabelOverlay(mode="outline")(image, label)
    table = adjacency_colors(label).numpy()
    colour = table[label[0]].transpose(2, 0, 1)
    np.testing.assert_array_equal(out[:, expected], colour[:, expected])  # opaque outline
    grey = np.full((3, 7, 9), 255.0)
    grey[:, 0, 0] = 0.0
    np.testing.assert_array_equal(out[:, ~expected], grey[:, ~expected])  # the image elsewhere
    # width 2: two pixels deep, the centre of a 7 x 7 square is left
    square = np.zeros((9, 9), np.int64)
    square[1:8, 1:8] = 4
    ring = square > 0
    ring[3:6, 3:6] = False
    np.testing.assert_array_equal(label_boundaries(square, width=2).numpy(), ring)
    np.testing.assert_array_equal(label_boundaries(label, width=2).numpy(), _slow_boundaries(label, 2))


@pytest.mark.parametrize("seed", range(6))
def test_outline_matches_skimage_and_slow_reference(seed):
    from skimage.segmentation import find_boundaries

    rng = np.random.default_rng(seed)
    ndim = 2 + seed % 2
    shape = tuple(int(s) for s in rng.integers(4, 12, size=ndim))
    label = rng.integers(0, 4, size=shape)
    got = label_boundaries(label).numpy()
    np.testing.assert_array_equal(got, find_boundaries(label, connectivity=ndim, mode="inner"))
    np.testing.assert_array_equal(label_boundaries(label, 2).numpy(), _slow_boundaries(label, 2))


def test_both_mode_fills_lightly_and_outlines_opaquely():
    label = np.zeros((1, 8, 8), np.int64)
    label[0, 1:7, 1:7] = 1
    image = np.zeros((1, 8, 8), np.float32)
    image[0, 0, 0] = 1.0  # grey 0 but one pixel
    out = LabelOverlay(alpha=0.5, mode="both", width=2)(image, label)
    edge = label_boundaries(label, 2)[0].numpy()
    inner = (label[0] == 1) & ~edge
    assert inner.sum() == 4
    np.testing.assert_array_equal(out[:, edge], np.repeat(PALETTE[0][:, None], edge.sum(), 1))
    np.testing.assert_array_equal(out[:, inner], np.round(np.repeat(0.5 * PALETTE[0][:, None], 4, 1)))
    assert out[:, 0, 1].tolist() == [0.0, 0.0, 0.0] and out[:, 0, 0].tolist() == [255.0, 255.0, 255.0]


def test_binary_mask_outline_and_explicit_table_keep_every_boundary():
    mask = np.zeros((1, 6, 6), np.float32)
    mask[0, 1:5, 1:5] = 1.0  # e.g. the EM bundle's membrane mask, as floats
    out = LabelOverlay(mode="outline")(np.zeros((1, 6, 6), np.float32), mask)
    edge = label_boundaries(mask)[0].numpy()
    assert edge.sum() == 12 and (out[:, edge] == PALETTE[0][:, None]).all() and (out[:, ~edge] == 0).all()
    # with a table of one colour, ids 1 and 2 share it but their common boundary is still drawn
    label = np.array([[[1, 1, 2, 2]]])
    out = LabelOverlay(colors=[[0, 0, 0], [255, 0, 0]], mode="outline")(np.zeros((1, 1, 4), np.float32), label)
    assert out[0, 0].tolist() == [0.0, 255.0, 255.0, 0.0]


# ------------------------------------------------------------------------------------------------ 3D, types
def test_3d_volume():
    from skimage.segmentation import find_boundaries

    label = np.zeros((1, 6, 8, 10), np.int64)
    label[0, 1:5, 1:7, 1:5] = 1  # two touching boxes
    label[0, 1:5, 1:7, 5:9] = 2
    label[0, 5, 3, 3] = 3  # touches box 1 across the slices only
    assert label_adjacency(label, 1).tolist() == [[1, 2], [1, 3]]
    table = adjacency_colors(label).numpy()
    assert len({tuple(table[k]) for k in (1, 2, 3)}) == 3
    np.testing.assert_array_equal(
        label_boundaries(label)[0].numpy(), find_boundaries(label[0], connectivity=3, mode="inner")
    )
    image = MetaTensor(torch.rand(1, 6, 8, 10), meta={"filename_or_obj": "vol.nii"})
    out = LabelOverlay(mode="both")(image, label)
    assert isinstance(out, MetaTensor) and out.shape == (3, 6, 8, 10) and out.meta["filename_or_obj"] == "vol.nii"


@pytest.mark.parametrize("device", DEVICES)
def test_metatensor_in_metatensor_out_on_each_device(device):
    label = torch.zeros(1, 16, 16, dtype=torch.int64)
    label[0, 2:8, 2:8], label[0, 2:8, 8:14], label[0, 9:15, 4:12] = 1, 2, 3
    image = MetaTensor(torch.rand(1, 16, 16), meta={"filename_or_obj": "x.png", "spacing": [0.5, 0.5]})
    ref = {m: LabelOverlay(mode=m)(image, label) for m in ("fill", "outline", "both")}
    for mode, expected in ref.items():
        out = LabelOverlay(mode=mode)(image.to(device), label.to(device))
        assert isinstance(out, MetaTensor) and out.device.type == device and out.dtype == torch.float32
        assert out.meta["filename_or_obj"] == "x.png" and out.meta["spacing"] == [0.5, 0.5]
        torch.testing.assert_close(out.cpu().as_tensor(), expected.as_tensor(), rtol=0, atol=0)
    assert label_adjacency(label.to(device)).device.type == device
    assert adjacency_colors(label.to(device)).device.type == device


def test_dictionary_transform_and_aliases():
    image = MetaTensor(torch.rand(1, 8, 8), meta={"filename_or_obj": "x.png"})
    label = torch.zeros(1, 8, 8)
    label[0, 1:4, 1:4], label[0, 1:4, 4:7] = 1, 2
    overlay = LabelOverlayd(["a", "b"], overlay_keys=["oa", "ob"], mode="both", width=1)
    d = overlay({"image": image, "a": label, "b": label > 0})
    np.testing.assert_array_equal(d["oa"].numpy(), LabelOverlay(mode="both")(image, label).numpy())
    assert d["oa"].meta["filename_or_obj"] == "x.png" and d["ob"].shape == (3, 8, 8)
    assert LabelOverlayD is LabelOverlayDict is LabelOverlayd
    assert LabelOverlayd.backend == LabelOverlay.backend


# ------------------------------------------------------------------------------------------------ the fill
def test_label_overlay_values_and_errors():
    image = MetaTensor(torch.tensor([[[0.0, 1.0], [2.0, 4.0]]]), meta={"filename_or_obj": "x.png"})
    label = torch.tensor([[[0, 1], [2, 3]]])
    out = LabelOverlay(alpha=0.25, colors="sequential")(image, label)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "x.png" and out.shape == (3, 2, 2)
    grey = np.array([[0.0, 63.75], [127.5, 255.0]])
    colours = label_colors(3).numpy()
    expected = np.stack([grey] * 3)
    for (i, j), k in (((0, 1), 1), ((1, 0), 2), ((1, 1), 3)):
        expected[:, i, j] = 0.75 * grey[i, j] + 0.25 * colours[k]
    np.testing.assert_array_equal(out.numpy(), np.clip(np.round(expected), 0, 255))
    assert out[:, 0, 0].tolist() == [0.0, 0.0, 0.0]  # background keeps its grey value
    # the default colours: adjacency, the three mutually touching labels in three palette colours
    default = LabelOverlay(alpha=0.25)(image, label)
    table = adjacency_colors(label).numpy()
    for (i, j), k in (((0, 1), 1), ((1, 0), 2), ((1, 1), 3)):
        expected[:, i, j] = 0.75 * grey[i, j] + 0.25 * table[k]
    np.testing.assert_array_equal(default.numpy(), np.clip(np.round(expected), 0, 255))
    assert len({tuple(table[k]) for k in (1, 2, 3)}) == 3
    # a given table cycles for ids beyond it; numpy in, numpy out
    table = [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
    o = LabelOverlay(alpha=1.0, colors=table)(np.zeros((1, 1, 3), np.float32), np.array([[[1, 2, 3]]]))
    assert isinstance(o, np.ndarray)
    np.testing.assert_array_equal(o[:, 0, :].T, [[255, 0, 0], [0, 0, 255], [255, 0, 0]])
    d = LabelOverlayd("mask", overlay_keys="ov")({"image": image, "mask": label})
    assert d["ov"].shape == (3, 2, 2) and "mask_overlay" not in d
    with pytest.raises(ValueError, match="alpha"):
        LabelOverlay(alpha=1.5)
    with pytest.raises(ValueError, match="colors"):
        LabelOverlay(colors=[[1, 2]])
    with pytest.raises(ValueError, match="shape"):
        LabelOverlay()(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="integer"):
        LabelOverlay()(torch.zeros(1, 2, 2), torch.full((1, 2, 2), 0.5))
    with pytest.raises(ValueError, match="non-negative"):
        LabelOverlay()(torch.zeros(1, 2, 2), -torch.ones(1, 2, 2))
    with pytest.raises(KeyError, match="image_key"):
        LabelOverlayd("mask")({"mask": label})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"colors": "rainbow"}, r"colors must be one of \('adjacency', 'sequential'\) or a \(K \+ 1, 3\) RGB table"),
        ({"colors": [[0, 0, 0]]}, r"colors must be .*got shape \(1, 3\)"),
        ({"colors": [[0, 0, 0], [0, 0, 300]]}, r"colors must be .*outside \[0, 255\]"),
        ({"colors": None}, r"colors must be one of"),
        ({"mode": "edges"}, r"mode must be one of \('fill', 'outline', 'both'\), got 'edges'"),
        ({"width": 0}, r"width must be an integer >= 1, got 0"),
        ({"width": 1.5}, r"width must be an integer >= 1"),
        ({"width": True}, r"width must be an integer >= 1"),
        ({"neighbourhood": 0}, r"neighbourhood must be an integer >= 1, got 0"),
        ({"alpha": -0.1}, r"alpha must be a number in \[0, 1\]"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LabelOverlay(**kwargs)
    with pytest.raises(ValueError, match=match):
        LabelOverlayd("label", **kwargs)


def test_bad_arguments_of_the_functions():
    with pytest.raises(ValueError, match=r"palette must be a \(P, 3\) table"):
        adjacency_colors(np.ones((2, 2), int), palette=[[1, 2]])
    with pytest.raises(ValueError, match="neighbourhood must be an integer >= 1"):
        label_adjacency(np.ones((2, 2), int), neighbourhood=-1)
    with pytest.raises(ValueError, match="width must be an integer >= 1"):
        label_boundaries(np.ones((2, 2), int), width=0)
    with pytest.raises(ValueError, match="1 to 3 spatial axes"):
        label_boundaries(np.ones((2, 2, 2, 2), int))
    with pytest.raises(ValueError, match="1 to 3 spatial axes"):
        LabelOverlay(mode="outline")(torch.zeros(1, 2, 2, 2, 2), torch.ones(1, 2, 2, 2, 2))
    with pytest.raises(ValueError, match="integer values"):
        label_adjacency(np.full((2, 2), 1.5))
    with pytest.raises(ValueError, match="non-negative"):
        adjacency_colors(-np.ones((2, 2), int))
    # fill with sequential colours works in any number of axes, as before
    assert LabelOverlay(colors="sequential")(torch.zeros(1, 2, 2, 2, 2), torch.ones(1, 2, 2, 2, 2)).shape[0] == 3


# ------------------------------------------------------------------------------------------------ bundles
def test_bundle_overlay_options_are_valid():
    def overlay_entry(bundle):
        cfg = json.loads((ROOT / "bundles" / bundle / "configs" / "inference.json").read_text())
        found = []

        def walk(x):
            if isinstance(x, dict):
                if x.get("_target_", "").endswith("LabelOverlayd"):
                    found.append(x)
                for v in x.values():
                    walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)

        walk(cfg)
        assert len(found) == 1
        entry = {k: v for k, v in found[0].items() if not k.startswith("_")}
        return LabelOverlayd(**entry).overlay

    cells = overlay_entry("unet2015_dic_hela")
    assert cells.colors == "adjacency" and cells.mode == "both"
    membranes = overlay_entry("unet2015_em_membranes")
    assert membranes.mode == "fill" and membranes.colors[1].tolist() == [255.0, 0.0, 0.0]


def test_sparse_table_max_pool_equals_torch_max_pool():
    """The overlay's separable sparse-table maximum equals torch's max pooling (1D, 2D, 3D, several radii)."""
    import torch.nn.functional as F

    from monai_unet2015.transforms.overlay import _max_pool

    gen = torch.Generator().manual_seed(0)
    for shape in [(37,), (40, 23), (9, 11, 13)]:
        x = torch.randn(shape, generator=gen)
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[x.ndim - 1]
        for r in (1, 2, 3, 4, 5):
            if 2 * r + 1 > 2 * min(shape):
                continue
            ref = pool(x[None, None], 2 * r + 1, stride=1, padding=r)[0, 0]
            assert torch.equal(_max_pool(x, r), ref), (shape, r)

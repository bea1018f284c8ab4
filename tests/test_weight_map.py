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

"""UNetWeightMap / UNetWeightMapd against hand-computed values and a slow exact per-instance reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from monai.data import MetaTensor
from monai.utils import TransformBackends
from monai_unet2015.transforms import (
    UNetWeightMap,
    UNetWeightMapd,
    UNetWeightMapD,
    UNetWeightMapDict,
    carve_borders,
    label_instances,
    separation_border_term,
    unet_weight_map,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data not found at {DATA} (../shared/data)")


# ---------------------------------------------------------------------------------------------------------------
# independent slow references
# ---------------------------------------------------------------------------------------------------------------


def reference_term(instances, w0=10.0, sigma=5.0, spacing=None):
    """Straightforward exact term: one full distance transform per instance, keep the two smallest distances."""
    d1 = np.full(instances.shape, np.inf)
    d2 = np.full(instances.shape, np.inf)
    for i in np.unique(instances):
        if i == 0:
            continue
        d = ndi.distance_transform_edt(instances != i, sampling=spacing)
        d2 = np.minimum(d2, np.maximum(d1, d))
        d1 = np.minimum(d1, d)
    with np.errstate(invalid="ignore"):
        term = w0 * np.exp(-((d1 + d2) ** 2) / (2.0 * sigma**2))
    term[~np.isfinite(d2)] = 0.0
    term[instances > 0] = 0.0
    return term


def reference_carve(instances):
    """Border pixels by brute force over the 3**ndim - 1 neighbour offsets (full connectivity)."""
    padded = np.pad(instances, 1)
    border = np.zeros(instances.shape, bool)
    centre = tuple(slice(1, 1 + s) for s in instances.shape)
    for offset in np.ndindex(*(3,) * instances.ndim):
        if all(o == 1 for o in offset):
            continue
        shifted = padded[tuple(slice(o, o + s) for o, s in zip(offset, instances.shape))]
        border |= (instances > 0) & (shifted > 0) & (shifted != padded[centre])
    return np.where(border, 0, instances)


def two_touching_squares():
    lab = np.zeros((8, 8), np.int32)
    lab[2:6, 1:4] = 1
    lab[2:6, 4:7] = 2
    return lab


def random_labels(rng, shape, count):
    lab = np.zeros(shape, np.int32)
    for i in range(1, count + 1):
        centre = [rng.integers(0, s) for s in shape]
        half = rng.integers(1, 6, size=len(shape))
        lab[tuple(slice(max(0, c - h), c + h) for c, h in zip(centre, half))] = i
    return lab


# ---------------------------------------------------------------------------------------------------------------
# hand-computed cases
# ---------------------------------------------------------------------------------------------------------------


def test_two_touching_squares_by_hand():
    weight, target = UNetWeightMap(class_weights=None)(two_touching_squares()[None])
    # carving: columns 3 (instance 1) and 4 (instance 2) touch and become background
    expected_target = np.zeros((8, 8), np.uint8)
    expected_target[2:6, 1:3] = 1
    expected_target[2:6, 5:7] = 1
    np.testing.assert_array_equal(target[0], expected_target)
    # border pixel (3, 3): nearest instance-1 pixel (3, 2) at 1, nearest instance-2 pixel (3, 5) at 2
    assert weight[0, 3, 3] == pytest.approx(1 + 10 * math.exp(-(1 + 2) ** 2 / 50), abs=1e-5)
    # (3, 4) is the mirror image
    assert weight[0, 3, 4] == pytest.approx(1 + 10 * math.exp(-(2 + 1) ** 2 / 50), abs=1e-5)
    # (1, 3): above the border; instance 1 at (2, 2): sqrt(2); instance 2 at (2, 5): sqrt(5)
    assert weight[0, 1, 3] == pytest.approx(1 + 10 * math.exp(-(math.sqrt(2) + math.sqrt(5)) ** 2 / 50), abs=1e-5)
    # (3, 0): left of instance 1 (d1 = 1), instance 2 at (3, 5) (d2 = 5)
    assert weight[0, 3, 0] == pytest.approx(1 + 10 * math.exp(-(1 + 5) ** 2 / 50), abs=1e-5)
    # instance pixels: wc only
    assert np.all(weight[0][expected_target == 1] == 1.0)
    assert weight.dtype == np.float32


def test_class_balance_by_hand():
    lab = two_touching_squares()
    weight, target = UNetWeightMap(w0=0.0)(lab[None])
    # 16 foreground pixels after carving, 48 background: wc = 64 / (2 * n_k)
    assert int(target.sum()) == 16
    np.testing.assert_allclose(weight[0][target[0] == 1], 2.0)
    np.testing.assert_allclose(weight[0][target[0] == 0], 64 / 96, rtol=1e-6)
    assert weight.mean() == pytest.approx(1.0)
    fixed, _ = UNetWeightMap(w0=0.0, class_weights=(0.25, 3.0))(lab[None])
    np.testing.assert_allclose(fixed[0][target[0] == 1], 3.0)
    np.testing.assert_allclose(fixed[0][target[0] == 0], 0.25)


def test_one_square_has_no_border_term():
    lab = np.zeros((1, 12, 12), np.uint8)
    lab[0, 3:8, 4:9] = 7
    weight, target = UNetWeightMap()(lab)
    np.testing.assert_array_equal(target, lab > 0)  # nothing to carve
    n, n_fg = lab.size, int((lab > 0).sum())
    expected = np.where(lab > 0, n / (2 * n_fg), n / (2 * (n - n_fg)))
    np.testing.assert_allclose(weight, expected, rtol=1e-6)


def test_no_instance():
    weight, target = UNetWeightMap()(np.zeros((1, 5, 6), np.int64))
    np.testing.assert_array_equal(target, 0)
    np.testing.assert_allclose(weight, 1.0)  # a single class present: balanced weights are 1
    weight, _ = UNetWeightMap(class_weights=(0.5, 2.0))(np.zeros((1, 5, 6), np.int64))
    np.testing.assert_allclose(weight, 0.5)


def test_two_touching_cubes_3d_by_hand():
    lab = np.zeros((1, 7, 8, 7), np.int32)
    lab[0, 1:6, 1:4, 1:6] = 1
    lab[0, 1:6, 4:7, 1:6] = 2
    weight, target = UNetWeightMap(class_weights=None)(lab)
    assert target.shape == lab.shape
    # the touching faces (y = 3 and y = 4) are carved, including edges touching diagonally (26-connectivity)
    assert not target[0, :, 3:5].any()
    np.testing.assert_array_equal(target[0, 2:5, 1:3, 2:5], 1)
    # border voxel (3, 3, 3): instance 1 at (3, 2, 3) -> 1, instance 2 at (3, 5, 3) -> 2
    assert weight[0, 3, 3, 3] == pytest.approx(1 + 10 * math.exp(-9 / 50), abs=1e-5)
    np.testing.assert_allclose(weight[0] - 1, reference_term(carve_borders(lab[0])[0]), atol=1e-4)


def test_tie_between_two_instances_gives_equal_distances():
    lab = np.zeros((1, 1, 9), np.int32)
    lab[0, 0, 0] = 1
    lab[0, 0, 8] = 2
    term = UNetWeightMap(class_weights=None, w0=10.0, sigma=5.0)(lab)[0][0, 0] - 1
    # pixel 4 is 4 px from both; pixel 1 is 1 and 7 px away
    assert term[4] == pytest.approx(10 * math.exp(-64 / 50), abs=1e-5)
    assert term[1] == pytest.approx(10 * math.exp(-64 / 50), abs=1e-5)


def test_binary_mask_uses_connected_components():
    mask = np.zeros((1, 10, 20), np.uint8)
    mask[0, 2:8, 2:8] = 255  # ISBI style: 255 = cell interior
    mask[0, 2:8, 11:17] = 255
    weight, target = UNetWeightMap(class_weights=None)(mask)
    np.testing.assert_array_equal(target, mask > 0)
    # between the blobs: d1 = 1 (column 8 from 7), d2 = 3 (column 8 to 11)
    assert weight[0, 4, 8] == pytest.approx(1 + 10 * math.exp(-16 / 50), abs=1e-5)
    # as explicit instances the result is the same
    inst = np.where(mask > 0, np.where(np.arange(20) < 10, 1, 2), 0).astype(np.int32)
    np.testing.assert_allclose(UNetWeightMap(class_weights=None)(inst)[0], weight, atol=1e-6)
    # a single component: no border term at all
    one = np.zeros_like(mask)
    one[0, 2:8, 2:17] = 1
    np.testing.assert_allclose(UNetWeightMap(class_weights=None)(one)[0], 1.0)


def test_label_types():
    lab = np.zeros((1, 6, 12), np.int32)
    lab[0, 1:5, 1:4] = 3
    lab[0, 1:5, 8:11] = 3  # one instance in two pieces
    inst_w = UNetWeightMap(class_weights=None, label_type="instance")(lab)[0]
    np.testing.assert_allclose(inst_w, 1.0)  # one instance: no border term
    auto_w = UNetWeightMap(class_weights=None)(lab)[0]  # single value -> binary -> two components
    assert auto_w.max() > 1.5
    np.testing.assert_allclose(UNetWeightMap(class_weights=None, label_type="binary")(lab)[0], auto_w)
    # label_instances itself (instance vs binary reading of this label) is tested in test_instances.py


def test_connectivity_one_keeps_diagonal_neighbours():
    lab = np.zeros((4, 4), np.int32)
    lab[0:2, 0:2] = 1
    lab[2:4, 2:4] = 2  # touching only at a corner
    carved_full = carve_borders(lab)[0]
    carved_faces = carve_borders(lab, connectivity=1)[0]
    assert carved_full[1, 1] == 0 and carved_full[2, 2] == 0
    np.testing.assert_array_equal(carved_faces, lab)


def test_relabelling_does_not_change_the_result():
    rng = np.random.default_rng(3)
    lab = random_labels(rng, (40, 50), 12)
    perm = np.concatenate([[0], rng.permutation(np.arange(1, 13)) * 1000 + 17])
    w1, t1 = UNetWeightMap()(lab[None])
    w2, t2 = UNetWeightMap()(perm[lab][None])
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_allclose(w1, w2, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# fast versus slow exact reference
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_random_labels_match_reference(seed):
    rng = np.random.default_rng(seed)
    ndim = 2 if seed % 3 else 3
    shape = tuple(int(s) for s in rng.integers(6, 60 if ndim == 2 else 22, size=ndim))
    lab = random_labels(rng, shape, int(rng.integers(0, 20)))
    spacing = None if seed % 2 else tuple(float(v) for v in rng.uniform(0.4, 2.5, size=ndim))
    sigma, w0, tol = float(rng.uniform(1, 7)), float(rng.uniform(1, 15)), float(10 ** rng.uniform(-7, -3))
    carved = carve_borders(lab)[0]
    np.testing.assert_array_equal(carved, reference_carve(lab))
    fast = separation_border_term(carved, w0=w0, sigma=sigma, spacing=spacing, tol=tol)
    exact = reference_term(carved, w0=w0, sigma=sigma, spacing=spacing)
    assert np.abs(fast - exact).max() <= tol + 1e-5 * w0


def test_tolerance_controls_the_error():
    rng = np.random.default_rng(7)
    carved = carve_borders(random_labels(rng, (64, 64), 30))[0]
    exact = reference_term(carved)
    for tol in (1e-2, 1e-4, 1e-9):
        err = np.abs(separation_border_term(carved, tol=tol) - exact).max()
        assert err <= tol + 1e-5
    with pytest.raises(ValueError, match="tol"):
        separation_border_term(carved, tol=0.0)


def test_spacing_is_physical():
    rng = np.random.default_rng(11)
    lab = random_labels(rng, (30, 40), 10)
    carved = carve_borders(lab)[0]
    spacing = (2.0, 0.5)
    weight = UNetWeightMap(class_weights=None, spacing=spacing, sigma=3.0)(lab[None])[0][0]
    np.testing.assert_allclose(weight - 1, reference_term(carved, sigma=3.0, spacing=spacing), atol=1e-4)
    # "meta": read from the MetaTensor's affine
    affine = torch.diag(torch.tensor([2.0, 0.5, 1.0, 1.0]))
    meta_weight = UNetWeightMap(class_weights=None, spacing="meta", sigma=3.0)(MetaTensor(lab[None], affine=affine))[0]
    np.testing.assert_allclose(meta_weight[0].numpy(), weight, atol=1e-6)
    # a uniform physical spacing s with sigma * s equals pixels with sigma
    scaled = UNetWeightMap(class_weights=None, spacing=0.25, sigma=5.0 * 0.25)(lab[None])[0]
    np.testing.assert_allclose(scaled[0], UNetWeightMap(class_weights=None)(lab[None])[0][0], atol=1e-5)


@needs_data
def test_dsb_nuclei_match_reference():
    tifffile = pytest.importorskip("tifffile")
    mask = tifffile.imread(DATA / "dsb2018-nuclei" / "mask2d.tif")
    assert len(np.unique(mask)) - 1 == 125
    weight, target = UNetWeightMap(class_weights=None)(mask[None])
    carved = reference_carve(label_instances(mask)[0])
    np.testing.assert_array_equal(target[0], carved > 0)
    exact = 1.0 + reference_term(carved)
    assert np.abs(weight[0] - exact).max() < 1e-3


@needs_data
def test_dic_hela_matches_reference():
    tifffile = pytest.importorskip("tifffile")
    mask = tifffile.imread(DATA / "dic-hela" / "01_GT" / "SEG" / "man_seg002.tif")
    weight = UNetWeightMap(class_weights=None, return_target=False)(mask[None])
    exact = 1.0 + reference_term(reference_carve(mask))
    assert np.abs(weight[0] - exact).max() < 1e-3


@needs_data
def test_synthetic_3d_matches_reference():
    tifffile = pytest.importorskip("tifffile")
    mask = tifffile.imread(DATA / "synthetic-3d" / "mask3d.tif")
    spacing = (2.0, 1.0, 1.0)
    weight = UNetWeightMap(class_weights=None, spacing=spacing, return_target=False)(mask[None])
    exact = 1.0 + reference_term(reference_carve(mask), spacing=spacing)
    assert np.abs(weight[0] - exact).max() < 1e-3


# ---------------------------------------------------------------------------------------------------------------
# types, metadata, dictionary version
# ---------------------------------------------------------------------------------------------------------------


def test_types_and_metadata():
    lab = two_touching_squares()[None]
    w_np, t_np = UNetWeightMap()(lab)
    assert isinstance(w_np, np.ndarray) and isinstance(t_np, np.ndarray)
    assert t_np.dtype == lab.dtype
    w_t, t_t = UNetWeightMap()(torch.as_tensor(lab))
    assert type(w_t) is torch.Tensor and w_t.dtype == torch.float32 and t_t.dtype == torch.int32
    meta = MetaTensor(torch.as_tensor(lab, dtype=torch.float32), meta={"filename_or_obj": "cells.tif"})
    w_m, t_m = UNetWeightMap()(meta)
    assert isinstance(w_m, MetaTensor) and isinstance(t_m, MetaTensor)
    assert w_m.meta["filename_or_obj"] == "cells.tif" and t_m.meta["filename_or_obj"] == "cells.tif"
    assert w_m.dtype == torch.float32 and t_m.dtype == torch.float32
    np.testing.assert_allclose(w_m.numpy(), w_np)
    np.testing.assert_array_equal(t_m.numpy(), t_np)
    only = UNetWeightMap(return_target=False)(lab)
    np.testing.assert_array_equal(only, w_np)


def test_dictionary_version():
    lab = two_touching_squares()[None]
    assert UNetWeightMapD is UNetWeightMapd and UNetWeightMapDict is UNetWeightMapd
    out = UNetWeightMapd(keys="label")({"label": lab, "image": np.ones_like(lab)})
    w, t = UNetWeightMap()(lab)
    np.testing.assert_array_equal(out["weight"], w)
    np.testing.assert_array_equal(out["label"], t)
    kept = UNetWeightMapd(keys="label", weight_key="w", target_key="target")({"label": lab})
    assert sorted(kept) == ["label", "target", "w"]
    np.testing.assert_array_equal(kept["label"], lab)
    np.testing.assert_array_equal(kept["target"], t)
    two = UNetWeightMapd(keys=("a", "b"), weight_key=("wa", "wb"))({"a": lab, "b": lab})
    np.testing.assert_array_equal(two["wa"], two["wb"])
    assert UNetWeightMapd(keys="missing", allow_missing_keys=True)({"label": lab}).keys() == {"label"}
    with pytest.raises(ValueError, match="weight_key"):
        UNetWeightMapd(keys="label", weight_key="label")



def test_backend_is_numpy_and_tensors_round_trip():
    """Issue 13 item 7: the transforms compute in NumPy and say so; tensors come back as tensors of the input's
    type and dtype, MetaTensors as MetaTensors with the input's metadata, in the array and dictionary versions."""
    assert UNetWeightMap.backend == [TransformBackends.NUMPY]
    assert UNetWeightMapd.backend == [TransformBackends.NUMPY]
    lab = two_touching_squares()[None]
    w_np, t_np = UNetWeightMap()(lab)
    for dtype in (torch.int32, torch.int64, torch.uint8, torch.float32):
        w_t, t_t = UNetWeightMap()(torch.as_tensor(lab, dtype=dtype))
        assert type(w_t) is torch.Tensor and type(t_t) is torch.Tensor
        assert w_t.dtype == torch.float32 and t_t.dtype == dtype
        np.testing.assert_array_equal(w_t.numpy(), w_np)
        np.testing.assert_array_equal(t_t.numpy(), t_np)
    affine = torch.diag(torch.tensor([2.0, 0.5, 1.0, 1.0], dtype=torch.float64))
    meta = MetaTensor(torch.as_tensor(lab), affine=affine, meta={"filename_or_obj": "cells.tif"})
    out = UNetWeightMapd(keys="label", target_key="target")({"label": meta})
    for key in ("weight", "target"):
        assert isinstance(out[key], MetaTensor), key
        assert out[key].meta["filename_or_obj"] == "cells.tif"
        torch.testing.assert_close(out[key].affine, affine)
    assert out["weight"].dtype == torch.float32 and out["target"].dtype == torch.int32
    np.testing.assert_array_equal(out["weight"].numpy(), w_np)
    np.testing.assert_array_equal(out["target"].numpy(), t_np)
    assert out["label"] is meta  # the instance labels are kept untouched
    assert isinstance(UNetWeightMap(return_target=False)(meta), MetaTensor)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_come_back_on_their_device():
    lab = torch.as_tensor(two_touching_squares()[None]).cuda()
    w, t = UNetWeightMap()(MetaTensor(lab))
    assert isinstance(w, MetaTensor) and w.device == lab.device and t.device == lab.device
    np.testing.assert_array_equal(w.cpu().numpy(), UNetWeightMap()(two_touching_squares()[None])[0])

def test_functional_matches_transform():
    lab = two_touching_squares()
    weight, target = unet_weight_map(lab)
    w, t = UNetWeightMap()(lab[None])
    np.testing.assert_array_equal(weight, w[0])
    np.testing.assert_array_equal(target, t[0])


# ---------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label, match",
    [
        (np.full((1, 4, 4), 1.5), "non-integer"),
        (np.full((1, 4, 4), np.nan), "NaN"),
        (-np.ones((1, 4, 4), np.int32), "non-negative"),
        (np.ones((4, 4), np.int32), r"\(1, H, W\)"),
        (np.ones((2, 4, 4), np.int32), r"\(1, H, W\)"),
        (np.ones((1, 2, 3, 4, 5), np.int32), r"\(1, H, W\)"),
        (np.ones((1, 0, 4), np.int32), "empty"),
    ],
)
def test_bad_labels(label, match):
    with pytest.raises(ValueError, match=match):
        UNetWeightMap()(label)


def test_integral_float_labels_are_accepted():
    lab = two_touching_squares()[None]
    np.testing.assert_array_equal(UNetWeightMap()(lab.astype(np.float32))[0], UNetWeightMap()(lab)[0])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"sigma": 0.0}, ValueError, "sigma"),
        ({"w0": -1.0}, ValueError, "w0"),
        ({"w0": "10"}, TypeError, "w0"),
        ({"tol": 0.0}, ValueError, "tol"),
        ({"class_weights": (1.0, 2.0, 3.0)}, ValueError, "class_weights"),
        ({"class_weights": "inverse"}, ValueError, "class_weights"),
        ({"label_type": "semantic"}, ValueError, "label_type"),
        ({"spacing": "auto"}, ValueError, "spacing"),
        ({"spacing": (1.0, -1.0)}, ValueError, "spacing"),
        ({"connectivity": 0}, ValueError, "connectivity"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        UNetWeightMap(**kwargs)


def test_bad_arguments_at_call_time():
    lab = two_touching_squares()[None]
    with pytest.raises(ValueError, match="connectivity"):
        UNetWeightMap(connectivity=3)(lab)
    with pytest.raises(ValueError, match="spacing"):
        UNetWeightMap(spacing=(1.0, 1.0, 1.0))(lab)
    with pytest.raises(ValueError, match="MetaTensor"):
        UNetWeightMap(spacing="meta")(lab)

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

"""Tests of the paper's elastic deformation against SciPy (an independent implementation of the same
algorithm), hand-computed shifts, real label images, and MONAI's seeding machinery. The resampling engine under
it (B-spline matrices, prefilter, sampling grids, threaded grid_sample, inversion) is tested in test_resample.py."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from monai.data import DataLoader, Dataset, MetaTensor
from monai.transforms import Compose
from monai.utils import set_determinism
from monai_unet2015.transforms import (
    GridElastic,
    GridElasticd,
    GridElasticD,
    GridElasticDict,
    RandGridElastic,
    RandGridElasticd,
    RandGridElasticD,
    RandGridElasticDict,
)
from monai_unet2015.transforms.elastic import array as elastic_array
from monai_unet2015.transforms.elastic import dictionary as elastic_dictionary
from monai_unet2015.transforms.elastic import functional as F_el

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _mirror(idx: np.ndarray, n: int) -> np.ndarray:
    if n == 1:
        return np.zeros_like(idx)
    p = 2 * (n - 1)
    r = np.mod(idx, p)
    return np.where(r >= n, p - r, r)


def _scipy_reference(img: np.ndarray, disp: np.ndarray, order: int, mode: str = "mirror") -> np.ndarray:
    """The same algorithm with SciPy: zoom(order=3) of the coarse grid, then map_coordinates per channel."""
    spatial = img.shape[1:]
    grid = np.asarray(disp.shape[1:])
    dense = np.stack([ndi.zoom(disp[a], np.divide(spatial, grid), order=3) for a in range(len(spatial))])
    coords = np.stack(np.meshgrid(*[np.arange(n) for n in spatial], indexing="ij")) + dense
    return np.stack([ndi.map_coordinates(c, coords, order=order, mode=mode) for c in img])


# ---------------------------------------------------------------------------------------------- field


@pytest.mark.parametrize("spatial,grid", [((64, 48), (3, 3)), ((20, 17, 23), (3, 3, 3)), ((40, 30), (4, 2))])
def test_dense_field(spatial, grid):
    gen = torch.Generator().manual_seed(0)
    disp = torch.randn(len(spatial), *grid, generator=gen, dtype=torch.float64) * 10
    dense = F_el.dense_displacement(disp, spatial)
    ref = np.stack([ndi.zoom(disp[a].numpy(), np.divide(spatial, grid), order=3) for a in range(len(spatial))])
    np.testing.assert_allclose(dense.numpy(), ref, atol=1e-10)
    # the nodes at the corners are interpolated exactly (corner to corner grid)
    corner = (slice(None),) + (0,) * len(spatial)
    np.testing.assert_allclose(dense[corner].numpy(), disp[corner].numpy(), atol=1e-10)
    # (the one-matmul grid of the same field: tests/test_resample.py::test_coarse_sampling_grid_is_grid_of_dense_field)


# ---------------------------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("spatial", [(48, 40), (14, 18, 16)])
@pytest.mark.parametrize("mode,order", [("bilinear", 1), (3, 3), ("nearest", 0)])
def test_resampling_matches_scipy(spatial, mode, order):
    rng = np.random.default_rng(1)
    img = rng.random((2, *spatial))
    disp = rng.normal(0, 4, (len(spatial),) + (3,) * len(spatial))
    out = F_el.grid_elastic(torch.from_numpy(img), torch.from_numpy(disp), mode=mode)
    ref = _scipy_reference(img, disp, order)
    if mode == 3:  # outside the image: zeros == SciPy "constant" (same in-domain spline)
        out0 = F_el.grid_elastic(torch.from_numpy(img), torch.from_numpy(disp), mode=3, padding_mode="zeros")
        np.testing.assert_allclose(out0.numpy(), _scipy_reference(img, disp, 3, "constant"), atol=1e-7)
    assert out.dtype == torch.float64
    if order == 0:  # random coordinates: no ties, so nearest must agree everywhere
        np.testing.assert_array_equal(out.numpy(), ref)
    else:
        np.testing.assert_allclose(out.numpy(), ref, atol=1e-7)


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic", 3])
@pytest.mark.parametrize("padding_mode", ["reflection", "border", "zeros"])
def test_constant_displacement_is_a_shift(mode, padding_mode):
    # equal node displacements give a constant field: out[y, x] = img[y + 3, x - 2] (pull-back convention)
    rng = np.random.default_rng(2)
    img = rng.random((1, 24, 20)).astype(np.float32)
    disp = torch.zeros(2, 3, 3)
    disp[0], disp[1] = 3.0, -2.0
    out = F_el.grid_elastic(torch.from_numpy(img), disp, mode=mode, padding_mode=padding_mode).numpy()
    yy, xx = np.meshgrid(np.arange(24) + 3, np.arange(20) - 2, indexing="ij")
    inside = (yy <= 23) & (xx >= 0)
    if padding_mode == "reflection":
        ref = img[:, _mirror(yy, 24), _mirror(xx, 20)]
        np.testing.assert_allclose(out, ref, atol=2e-4)
    else:  # border/zeros only differ outside: compare where the source pixel exists
        ref = img[:, np.clip(yy, 0, 23), np.clip(xx, 0, 19)]
        assert np.abs(out - ref)[:, inside].max() < 2e-4
        if padding_mode == "zeros" and mode in ("nearest", "bilinear", 3):
            assert np.abs(out[:, ~inside]).max() < 1e-6


def test_zero_displacement_is_identity():
    gen = torch.Generator().manual_seed(3)
    for shape in [(2, 572, 572), (1, 31, 61, 57)]:
        img = torch.rand(shape, generator=gen)
        for mode in ["bilinear", 3, "nearest"] + (["bicubic"] if len(shape) == 3 else []):
            t = RandGridElastic(sigma=0.0, prob=1.0, mode=mode)
            out = t(img)
            assert (out - img).abs().max() <= 1e-5
    data = {"image": torch.rand(1, 64, 64, generator=gen), "label": torch.randint(0, 9, (1, 64, 64), generator=gen)}
    out = RandGridElasticd(["image", "label"], sigma=0.0, prob=1.0, mode=("bicubic", "nearest"))(data)
    assert (out["image"] - data["image"]).abs().max() <= 1e-5
    assert torch.equal(out["label"], data["label"])


# ---------------------------------------------------------------------------------------------- randomness


def test_drawn_displacements_have_requested_std():
    t = RandGridElastic(sigma=10.0, prob=1.0)
    t.set_random_state(0)
    draws = []
    for _ in range(1500):
        t.randomize((64, 64))
        draws.append(t.displacement.numpy())
    d = np.stack(draws)  # (n, 2, 3, 3)
    assert d.shape[1:] == (2, 3, 3)
    np.testing.assert_allclose(d.std(axis=0), 10.0, rtol=0.08)  # per node and component, 1500 draws
    np.testing.assert_allclose(d.std(), 10.0, rtol=0.02)
    assert abs(d.mean()) < 0.2
    flat = d.reshape(len(d), -1)
    corr = np.corrcoef(flat, rowvar=False) - np.eye(flat.shape[1])
    assert np.abs(corr).max() < 0.12  # independent nodes and components
    # physical units: sigma 2 um on a (1, 0.5, 0.5) um grid -> (2, 4, 4) px; 3D grid 3x3x3 by default
    t3 = RandGridElastic(sigma=2.0, spacing=(1.0, 0.5, 0.5), prob=1.0)
    t3.set_random_state(1)
    d3 = np.stack([(t3.randomize((8, 8, 8)), t3.displacement.numpy())[1] for _ in range(800)])
    assert d3.shape[1:] == (3, 3, 3, 3)
    np.testing.assert_allclose(d3.std(axis=(0, 2, 3, 4)), [2.0, 4.0, 4.0], rtol=0.03)
    # configurable grid
    t4 = RandGridElastic(grid_size=(5, 4), prob=1.0)
    t4.randomize((10, 10))
    assert tuple(t4.displacement.shape) == (2, 5, 4)


def test_seed_reproducible_and_replayable():
    img = torch.rand(1, 80, 72, generator=torch.Generator().manual_seed(4))
    a = RandGridElastic(prob=1.0, mode=3).set_random_state(7)
    b = RandGridElastic(prob=1.0, mode=3).set_random_state(7)
    c = RandGridElastic(prob=1.0, mode=3).set_random_state(8)
    out_a = a(img)
    assert torch.equal(out_a, b(img))
    assert not torch.allclose(out_a, c(img))
    # replay the draw on another image (e.g. a weight map computed later), and with randomize=False
    params = a.get_parameters()
    assert torch.equal(GridElastic(**params)(img), out_a)
    assert torch.equal(a(img, randomize=False), out_a)
    weight = torch.rand(1, 80, 72)
    assert torch.equal(a(weight, mode="bilinear", randomize=False), GridElastic(params["displacement"])(weight))
    # a draw spans any image corner to corner, so it also applies to another size
    assert GridElastic(**params)(torch.rand(1, 40, 36)).shape == (1, 40, 36)
    # dictionary version: the same draw for every key, replayable through GridElasticd
    td = RandGridElasticd(["image", "weight"], prob=1.0, mode=("bicubic", "bilinear")).set_random_state(5)
    out = td({"image": img, "weight": weight})
    later = GridElasticd(["weight"], **td.get_parameters(), mode="bilinear")({"weight": weight})
    assert torch.equal(later["weight"], out["weight"])
    again = td({"image": img, "weight": weight}, randomize=False)
    assert torch.equal(again["image"], out["image"])


def test_prob_and_compose_seed():
    img = torch.rand(1, 32, 32)
    t = RandGridElasticd(["image"], prob=0.0)
    out = t({"image": img})
    assert torch.equal(out["image"], img)
    assert out["image"].applied_operations[-1]["do_transforms"] is False
    assert not t.get_parameters()["displacement"].any()

    def pipeline(seed):
        c = Compose([RandGridElasticd(["image"], prob=0.5, mode="bilinear"), RandGridElasticd(["image"], prob=1.0)])
        c.set_random_state(seed)
        return [c({"image": img})["image"] for _ in range(4)]

    first, second, other = pipeline(11), pipeline(11), pipeline(12)
    assert all(torch.equal(x, y) for x, y in zip(first, second))
    assert not all(torch.equal(x, y) for x, y in zip(first, other))


def test_dataloader_workers_are_deterministic():
    gen = torch.Generator().manual_seed(5)
    items = [{"image": torch.rand(1, 48, 48, generator=gen), "label": torch.randint(0, 3, (1, 48, 48), generator=gen)}
             for _ in range(6)]
    transform = Compose([RandGridElasticd(["image", "label"], prob=1.0, mode=("bilinear", "nearest"))])

    def run(seed):
        set_determinism(seed=seed)
        loader = DataLoader(Dataset(items, transform), batch_size=2, num_workers=2, shuffle=False)
        return [b["image"].clone() for b in loader], [b["label"].clone() for b in loader]

    try:
        img1, _ = run(0)
        img2, _ = run(0)
        img3, _ = run(1)
    finally:
        set_determinism(seed=None)
    assert all(torch.equal(a, b) for a, b in zip(img1, img2))
    assert not all(torch.equal(a, b) for a, b in zip(img1, img3))
    assert not torch.equal(img1[0][0], items[0]["image"])  # something happened


# ---------------------------------------------------------------------------------------------- labels


def _read_tif(path: Path) -> np.ndarray:
    tifffile = pytest.importorskip("tifffile")
    if not path.exists():
        pytest.skip(f"real data not found: {path} (expected ../shared/data beside the repository)")
    return tifffile.imread(str(path))


def test_labels_keep_value_set_and_align_with_image():
    mask = _read_tif(DATA / "dsb2018-nuclei" / "mask2d.tif").astype(np.int64)  # 512x512 instance ids
    label = torch.from_numpy(mask)[None]
    big = label.clone()
    big[big > 0] += 2**30  # not representable in float32: must stay exact
    image = (label > 0).float() * 0.8 + 0.1  # an image made from the label
    t = RandGridElasticd(
        ["image", "label", "big", "u16"], sigma=10.0, prob=1.0, mode=("bicubic", "nearest", "nearest", "nearest")
    )
    t.set_random_state(2)
    out = t({"image": image, "label": label, "big": big, "u16": label.to(torch.int16)})
    assert out["label"].dtype == torch.int64 and out["big"].dtype == torch.int64 and out["u16"].dtype == torch.int16
    assert set(out["label"].unique().tolist()) <= set(label.unique().tolist())
    assert set(out["big"].unique().tolist()) <= set(big.unique().tolist())
    assert torch.equal(out["big"] > 0, out["label"] > 0) and torch.equal(out["u16"].long(), out["label"])
    moved = (out["label"] != label).float().mean().item()
    assert moved > 0.02  # the deformation is real (10 px on a 3x3 grid)
    # alignment: the thresholded deformed image equals the deformed foreground except at a few edge pixels
    fg_img = out["image"] > 0.5
    fg_lab = out["label"] > 0
    mismatch = (fg_img != fg_lab).float().mean().item()
    assert mismatch < 0.005, mismatch
    # instances survive (at most a few tiny ones pushed out of the field of view)
    assert len(out["label"].unique()) >= len(label.unique()) - 5


def test_3d_label_and_image():
    mask = _read_tif(DATA / "synthetic-3d" / "mask3d.tif").astype(np.int32)  # 31x61x57
    label = torch.from_numpy(mask)[None]
    image = torch.from_numpy(_read_tif(DATA / "synthetic-3d" / "img3d.tif").astype(np.float32))[None]
    t = RandGridElasticd(["image", "label"], sigma=(2.0, 5.0, 5.0), prob=1.0, mode=(3, "nearest"))
    t.set_random_state(0)
    out = t({"image": image, "label": label})
    assert out["image"].shape == image.shape and out["label"].dtype == torch.int32
    assert set(out["label"].unique().tolist()) <= set(label.unique().tolist())
    disp = t.get_parameters()["displacement"].numpy()
    ref = _scipy_reference(label.numpy().astype(np.float64), disp.astype(np.float64), 0)
    assert (out["label"].numpy() != ref).mean() < 1e-3  # float32 vs float64 coordinates: ties only
    with pytest.raises(ValueError, match="bicubic"):
        RandGridElastic(prob=1.0, mode="bicubic")(image)


# ---------------------------------------------------------------------------------------------- MONAI integration


def test_metatensor_trace_and_inverse():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 128), torch.linspace(0, 1, 128), indexing="ij")
    smooth = torch.sin(6 * yy) * torch.cos(5 * xx)
    affine = torch.diag(torch.tensor([0.5, 0.5, 1.0, 1.0], dtype=torch.float64))
    img = MetaTensor(smooth[None], affine=affine, meta={"filename_or_obj": "a.png"})
    lab = MetaTensor((smooth > 0).long()[None], affine=affine)
    # sigma 5 px on a 128 px image: a smooth, invertible field (no folds)
    t = RandGridElasticd(["image", "label"], sigma=5.0, prob=1.0, mode=(3, "nearest")).set_random_state(3)
    c = Compose([t])
    out = c({"image": img, "label": lab})
    for key in ("image", "label"):
        assert isinstance(out[key], MetaTensor)
        torch.testing.assert_close(out[key].affine, affine)
        assert out[key].applied_operations[-1]["class"] == "RandGridElasticd"
    assert out["image"].meta["filename_or_obj"] == "a.png"
    assert len(img.applied_operations) == 0  # the input is not modified
    assert not torch.allclose(out["image"], img)
    inv = c.inverse(out)
    assert len(inv["image"].applied_operations) == 0
    inner = (slice(None), slice(24, 104), slice(24, 104))
    assert (inv["image"] - img)[inner].abs().max() < 0.03
    assert (inv["label"] != lab)[inner].float().mean() < 0.01
    # array transforms: trace and inverse
    ta = RandGridElastic(sigma=5.0, prob=1.0, mode="bilinear").set_random_state(3)
    o = ta(img)
    assert o.applied_operations[-1]["class"] == "RandGridElastic"
    back = ta.inverse(o)
    assert len(back.applied_operations) == 0 and (back - img)[inner].abs().max() < 0.03
    # a folding field (10 px on a 32 px image) cannot be inverted: say so
    tf = RandGridElastic(sigma=10.0, prob=1.0).set_random_state(3)
    with pytest.warns(UserWarning, match="folds"):
        tf.inverse(tf(MetaTensor(torch.rand(1, 32, 32))))
    # plain tensors and numpy arrays are accepted
    assert isinstance(RandGridElastic(prob=1.0)(np.random.rand(1, 16, 16).astype(np.float32)), torch.Tensor)


def test_dtypes():
    u8 = torch.randint(0, 255, (1, 32, 32), dtype=torch.uint8)
    t = RandGridElastic(prob=1.0).set_random_state(0)
    assert t(u8).dtype == torch.float32
    assert t(u8, mode="nearest", randomize=False).dtype == torch.uint8
    assert t(u8.double(), randomize=False).dtype == torch.float64
    assert t(u8.half(), randomize=False).dtype == torch.float16


def test_aliases_and_doctests():
    assert GridElasticD is GridElasticd and GridElasticDict is GridElasticd
    assert RandGridElasticD is RandGridElasticd and RandGridElasticDict is RandGridElasticd
    for module in (F_el, elastic_array, elastic_dictionary):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_bad_input_errors():
    img = torch.rand(1, 16, 16)
    with pytest.raises(ValueError, match="mode"):
        RandGridElastic(mode="cubic")
    with pytest.raises(ValueError, match="mode"):
        RandGridElastic(mode=2)
    with pytest.raises(ValueError, match="padding_mode"):
        RandGridElastic(padding_mode="mirror")
    with pytest.raises(ValueError, match="grid_size"):
        RandGridElastic(grid_size=1)
    with pytest.raises(ValueError, match="sigma"):
        RandGridElastic(sigma=-1.0, prob=1.0)(img)
    with pytest.raises(ValueError, match="spacing"):
        RandGridElastic(spacing=(1.0, 0.0), prob=1.0)(img)
    with pytest.raises(ValueError, match="sigma"):
        RandGridElastic(sigma=(1.0, 2.0, 3.0), prob=1.0)(img)
    with pytest.raises(ValueError, match="shape"):
        RandGridElastic(prob=1.0)(torch.rand(16, 16))
    with pytest.raises(TypeError, match="img"):
        RandGridElastic(prob=1.0)([[1.0]])
    with pytest.raises(ValueError, match="displacement"):
        GridElastic(torch.zeros(3, 3, 3))(img)
    with pytest.raises(ValueError, match="displacement is required"):
        GridElastic()(img)
    with pytest.raises(ValueError, match="spatial shape"):
        RandGridElasticd(["a", "b"], prob=1.0)({"a": img, "b": torch.rand(1, 16, 17)})
    with pytest.raises(RuntimeError, match="previous draw"):
        RandGridElastic(prob=1.0)(img, randomize=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(6)
    img = torch.rand(1, 96, 80, generator=gen)
    lab = torch.randint(0, 5, (1, 96, 80), generator=gen)
    t = RandGridElasticd(["image", "label"], prob=1.0, mode=(3, "nearest")).set_random_state(0)
    cpu = t({"image": img, "label": lab})
    gpu = t({"image": img.cuda(), "label": lab.cuda()}, randomize=False)
    assert gpu["image"].device.type == "cuda" and gpu["label"].device.type == "cuda"
    torch.testing.assert_close(gpu["image"].cpu(), cpu["image"], atol=1e-4, rtol=0)
    assert (gpu["label"].cpu() != cpu["label"]).float().mean() < 1e-3
    vol = torch.rand(1, 24, 20, 16, generator=gen)
    t3 = RandGridElastic(prob=1.0, mode="bilinear").set_random_state(0)
    torch.testing.assert_close(t3(vol.cuda()).cpu(), t3(vol, randomize=False), atol=1e-4, rtol=0)

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

"""Tests of the resampling engine (``monai_unet2015.transforms.resample``) against SciPy and MONAI: B-spline
matrices (``zoom(order=3)``), the prefilter (``spline_filter``), cubic B-spline resampling
(``map_coordinates(order=3)``), sampling grids, the threaded ``grid_sample`` (``grid_sample`` and MONAI's
``Resample``), the multi-image warp and the fixed-point inverse."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from monai.transforms import Resample
from monai_unet2015.transforms import resample as R
from monai_unet2015.transforms.elastic import functional as F_el
from monai_unet2015.transforms.resample import bspline, grid, grid_sample, inverse, warping


def _separable(coarse: torch.Tensor, spatial: tuple) -> torch.Tensor:
    """Coarse grid -> per-pixel field by one B-spline matrix per axis (einsum, independent of the library's loop)."""
    mats = [R.bspline_upsampling_matrix(n, g, coarse.dtype) for n, g in zip(spatial, coarse.shape[1:])]
    if len(spatial) == 2:
        return torch.einsum("cij,ai,bj->cab", coarse, *mats)
    return torch.einsum("cijk,ai,bj,dk->cabd", coarse, *mats)


# ---------------------------------------------------------------------------------------------- B-spline


@pytest.mark.parametrize("size,grid", [(572, 3), (100, 3), (57, 4), (31, 2), (10, 5), (1, 3), (2, 3)])
def test_upsampling_matrix_is_scipy_zoom_order3(size, grid):
    m = R.bspline_upsampling_matrix(size, grid, dtype=torch.float64).numpy()
    ref = np.stack([ndi.zoom(np.eye(grid)[:, k], size / grid, order=3) for k in range(grid)], 1)
    assert m.shape == (size, grid)
    np.testing.assert_allclose(m, ref, atol=1e-12)


def test_upsampling_matrix_errors_and_dtype():
    assert R.bspline_upsampling_matrix(7, 3).dtype == torch.float32
    with pytest.raises(ValueError, match="size"):
        R.bspline_upsampling_matrix(0, 3)
    with pytest.raises(ValueError, match="grid_points"):
        R.bspline_upsampling_matrix(10, 1)


@pytest.mark.parametrize("shape", [(2, 200, 37), (1, 9, 70, 65), (3, 1, 5), (1, 2, 130)])
def test_prefilter_is_scipy_spline_filter(shape):
    rng = np.random.default_rng(0)
    x = rng.random(shape)
    nd = len(shape) - 1
    out = R.spline_prefilter(torch.from_numpy(x), nd).numpy()
    ref = np.stack([ndi.spline_filter(c, order=3, mode="mirror") for c in x])
    assert out.shape == x.shape
    np.testing.assert_allclose(out, ref, atol=1e-7 * np.abs(ref).max())


@pytest.mark.parametrize("spatial", [(40, 33), (12, 15, 11)])
@pytest.mark.parametrize("padding_mode,scipy_mode", [("reflection", "mirror"), ("zeros", "constant")])
def test_bspline_resample_is_scipy_map_coordinates(spatial, padding_mode, scipy_mode):
    rng = np.random.default_rng(1)
    x = rng.random((2, *spatial))
    dense = rng.normal(0, 3, (len(spatial), *spatial))  # a rough field: every pixel its own displacement
    out = R.bspline_resample(torch.from_numpy(x), torch.from_numpy(dense), padding_mode)
    coords = np.stack(np.meshgrid(*[np.arange(n) for n in spatial], indexing="ij")) + dense
    ref = np.stack([ndi.map_coordinates(c, coords, order=3, mode=scipy_mode) for c in x])
    assert out.shape == x.shape and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-7)
    # border: positions outside clamp to the border, inside the image the spline is the same
    border = R.bspline_resample(torch.from_numpy(x), torch.from_numpy(dense), "border").numpy()
    ref_border = np.stack(
        [ndi.map_coordinates(c, np.stack([coords[a].clip(0, n - 1) for a, n in enumerate(spatial)]), order=3,
                             mode="mirror") for c in x]
    )
    np.testing.assert_allclose(border, ref_border, atol=1e-7)
    with pytest.raises(ValueError, match="padding_mode"):
        R.bspline_resample(torch.from_numpy(x), torch.from_numpy(dense), "mirror")


# ---------------------------------------------------------------------------------------------- grids


@pytest.mark.parametrize("spatial,grid_shape", [((64, 48), (3, 3)), ((20, 17, 23), (3, 3, 3)), ((40, 30), (4, 2))])
def test_coarse_sampling_grid_is_grid_of_dense_field(spatial, grid_shape):
    gen = torch.Generator().manual_seed(0)
    disp = torch.randn(len(spatial), *grid_shape, generator=gen, dtype=torch.float64) * 10
    # the one-matmul grid equals the grid built from the dense field
    g1 = R.sampling_grid(_separable(disp, spatial))
    g2 = R.coarse_sampling_grid(disp, spatial)
    assert g2.shape == (1, *spatial, len(spatial))
    torch.testing.assert_close(g1, g2, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="displacement must have shape"):
        R.coarse_sampling_grid(disp[:1], spatial)


def test_sampling_grid_is_the_pixel_grid_of_grid_sample():
    # align_corners=True: the identity grid samples every pixel exactly; x, y are the reversed array axes
    x = torch.rand(1, 2, 7, 5, dtype=torch.float64)
    shift = torch.zeros(2, 7, 5, dtype=torch.float64)
    assert torch.equal(R.threaded_grid_sample(x, R.sampling_grid(shift), "nearest", "border"), x)
    shift[0] = 2.0
    out = R.threaded_grid_sample(x, R.sampling_grid(shift), "bilinear", "border")
    torch.testing.assert_close(out[:, :, :-2], x[:, :, 2:], atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------------------------- grid_sample


def test_threaded_grid_sample_split_is_identical():
    # the CPU row-split that lets grid_sample use several threads for one image must not change a single value
    gen = torch.Generator().manual_seed(7)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # 3 does not divide the row counts below: exercises the remainder call too
        for shape in [(1, 3, 57, 43), (1, 1, 5, 1), (1, 2, 9, 8, 7)]:
            x = torch.rand(shape, generator=gen)
            grid = torch.rand(1, *[s + 1 for s in shape[2:]], len(shape) - 2, generator=gen) * 2.4 - 1.2
            for mode in ["bilinear", "nearest"] + (["bicubic"] if len(shape) == 4 else []):
                ref = torch.nn.functional.grid_sample(x, grid, mode=mode, padding_mode="reflection", align_corners=True)
                assert torch.equal(R.threaded_grid_sample(x, grid, mode, "reflection"), ref)
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("shape", [(2, 40, 31), (1, 9, 12, 10)])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["reflection", "border", "zeros"])
def test_threaded_grid_sample_is_monai_resample(shape, mode, padding_mode):
    # MONAI's Resample (torch backend, norm_coords=False, align_corners=True) with the grid channel-first in array
    # order computes the same values; it is not used because it is slower (benchmarks/elastic.py)
    gen = torch.Generator().manual_seed(8)
    nd = len(shape) - 1
    x = torch.rand(shape, generator=gen)
    g = torch.rand(1, *shape[1:], nd, generator=gen) * 2.4 - 1.2
    monai_grid = g[0].movedim(-1, 0).flip(0).contiguous()
    ref = Resample(mode=mode, padding_mode=padding_mode, norm_coords=False, align_corners=True, dtype=None)(
        x, monai_grid
    )
    torch.testing.assert_close(R.threaded_grid_sample(x[None], g, mode, padding_mode)[0], torch.as_tensor(ref),
                               atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------- warp


def test_warp_dtypes_and_groups():
    gen = torch.Generator().manual_seed(9)
    img = torch.rand(2, 30, 20, generator=gen)
    lab = torch.randint(0, 9, (1, 30, 20), generator=gen)
    big = lab + 2**30  # not exactly representable in float32: computed in float64
    u8 = torch.randint(0, 255, (1, 30, 20), dtype=torch.uint8, generator=gen)
    dense = torch.randn(2, 30, 20, generator=gen) * 2
    out = R.warp([img, lab, big, u8, u8, img.half(), img.double()], dense,
                 ["bilinear", "nearest", 0, "nearest", 1, 3, "bicubic"], ["reflection"] * 7)
    assert [o.dtype for o in out] == [torch.float32, torch.int64, torch.int64, torch.uint8, torch.float32,
                                      torch.float16, torch.float64]
    assert torch.equal(out[2] - 2**30, out[1])  # the large ids stay exact and move like the small ones
    assert set(out[3].unique().tolist()) <= set(u8.unique().tolist())
    # grouped images (one call per mode, padding mode and compute dtype) equal one call per image
    single = [R.warp([x], dense, [m], ["reflection"])[0] for x, m in [(img, "bilinear"), (img[:1], "bilinear")]]
    grouped = R.warp([img, img[:1]], dense, ["bilinear", 1], ["reflection", "reflection"])
    assert all(torch.equal(a, b) for a, b in zip(single, grouped))
    # the lazy form builds only what the modes need
    built = []
    R.warp_lazy([img], ["bilinear"], ["border"], (30, 20), img.device,
                dense=lambda dt: built.append(("dense", dt)) or dense.to(dt),
                grid=lambda dt: built.append(("grid", dt)) or R.sampling_grid(dense.to(dt)))
    assert built == [("grid", torch.float32)]


def test_warp_errors_and_mode_look_ups():
    img = torch.rand(1, 8, 8)
    dense = torch.zeros(2, 8, 8)
    with pytest.raises(ValueError, match="same length"):
        R.warp([img, img], dense, ["bilinear"], ["border"])
    with pytest.raises(ValueError, match="spatial shape"):
        R.warp([torch.rand(1, 8, 9)], dense, ["bilinear"], ["border"])
    with pytest.raises(TypeError, match="complex"):
        R.warp([img.to(torch.complex64)], dense, ["bilinear"], ["border"])
    with pytest.raises(ValueError, match="bicubic"):
        R.warp([torch.rand(1, 4, 4, 4)], torch.zeros(3, 4, 4, 4), ["bicubic"], ["border"])
    assert [R.look_up_resample_mode(m) for m in R.RESAMPLE_MODES] == ["nearest", "bilinear", "bicubic", "nearest",
                                                                       "bilinear", 3]
    for bad in ("cubic", 2, True, None):
        with pytest.raises(ValueError, match="mode"):
            R.look_up_resample_mode(bad)
    with pytest.raises(ValueError, match="padding_mode"):
        R.look_up_resample_padding_mode("mirror")
    # the elastic module's names are this module's
    assert F_el.ELASTIC_MODES is R.RESAMPLE_MODES and F_el.ELASTIC_PADDING_MODES is R.RESAMPLE_PADDING_MODES
    assert F_el.look_up_elastic_mode is R.look_up_resample_mode
    assert F_el.look_up_elastic_padding_mode is R.look_up_resample_padding_mode
    for name in ("bspline_upsampling_matrix", "coarse_sampling_grid", "invert_displacement", "sampling_grid",
                 "spline_prefilter", "warp"):
        assert getattr(F_el, name) is getattr(R, name)


# ---------------------------------------------------------------------------------------------- inverse


def test_invert_displacement():
    # a smooth field (|grad u| < 1): v(y) = -u(y + v(y)) up to the tolerance, and v undoes u on a smooth image
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 80), indexing="ij")
    u = torch.stack([4 * torch.sin(3 * xx) * yy, -3 * torch.cos(2 * yy) * xx]).double()
    v = R.invert_displacement(u, tolerance=1e-6, iterations=100)
    assert v.shape == u.shape and v.dtype == torch.float64
    u_at = R.threaded_grid_sample(u[None], R.sampling_grid(v), "bilinear", "reflection")[0]
    assert (v + u_at).abs().max() < 1e-5
    img = (torch.sin(8 * yy) * torch.cos(7 * xx))[None].double()
    there = R.warp([img], u, ["bilinear"], ["reflection"])[0]
    back = R.warp([there], v, ["bilinear"], ["reflection"])[0]
    assert (back - img)[:, 8:-8, 8:-8].abs().max() < 0.02
    # a folding field cannot be inverted: say so
    with pytest.warns(UserWarning, match="folds"):
        R.invert_displacement(u * 20)


def test_doctests():
    for module in (R, bspline, grid, grid_sample, inverse, warping):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0 or module is R, module.__name__

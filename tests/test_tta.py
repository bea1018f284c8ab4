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

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai.data import MetaTensor
from monai.inferers import SimpleInferer

from monai_unet2015.inferers import DihedralTTAInferer, OverlapTileInferer, ValidPaddingGeometry, dihedral_transforms
from monai_unet2015.networks.nets import UNet2015

torch.manual_seed(0)
NET2D = UNet2015(features=(4, 8, 16), dropout=0.0).eval()
NET3D = UNet2015(spatial_dims=3, features=(2, 4, 8), dropout=0.0).eval()


def _manual_dihedral_average(inferer, net, x):
    """The 8 flips/rotations written out with numpy-style calls, independent of DihedralTransform."""
    preds = []
    for flip in (False, True):
        xf = torch.flip(x, [2]) if flip else x
        for k in range(4):
            y = inferer(torch.rot90(xf, k, [2, 3]), net)
            y = torch.rot90(y, -k, [2, 3])
            preds.append(torch.flip(y, [2]) if flip else y)
    return torch.stack(preds).mean(0)


def test_groups_have_distinct_invertible_elements():
    x = torch.arange(2 * 3 * 4 * 5 * 6, dtype=torch.float32).reshape(2, 3, 4, 5, 6)  # 3D, non-cubic
    x2 = x[..., 0]
    for dims, group, n in [(2, "dihedral", 8), (2, "rot90", 4), (2, "flips", 4), (3, "flips", 8),
                           (3, "dihedral", 8), (3, "rot90", 4), (2, "identity", 1), (1, "flips", 2)]:
        data = {1: x[..., 0, 0], 2: x2, 3: x}[dims]
        ts = dihedral_transforms(dims, group)
        assert len(ts) == n and ts[0].flips == () and ts[0].k == 0
        seen = set()
        for t in ts:
            moved = t.forward(data)
            assert torch.equal(t.inverse(moved), data)
            seen.add((tuple(moved.shape), moved.flatten()[:64].tolist().__repr__()))
        assert len(seen) == n  # all elements act differently
    square = torch.arange(9.0).reshape(1, 1, 3, 3)
    images = {tuple(t.forward(square).flatten().tolist()) for t in dihedral_transforms(2)}
    assert len(images) == 8  # the whole dihedral group of the square


def test_dihedral_in_3d_leaves_the_third_axis_alone():
    x = torch.rand(1, 1, 4, 5, 6)
    for t in dihedral_transforms(3, "dihedral", spatial_axes=(0, 1)):
        y = t.forward(x)
        assert y.shape[-1] == 6
        # every slice along the last axis is transformed alike
        torch.testing.assert_close(y[..., 2], t.forward(x[..., 2].unsqueeze(-1))[..., 0])


def test_tta_equals_manual_average_with_overlap_tile_inferer():
    x = torch.randn(1, 1, 37, 26)  # non-square: rotations swap the axes
    inner = OverlapTileInferer(roi_size=16, overlap=0.25, sw_batch_size=2)
    out = DihedralTTAInferer(inner)(x, NET2D)
    assert out.shape == (1, 2, 37, 26)
    torch.testing.assert_close(out, _manual_dihedral_average(inner, NET2D, x), atol=1e-5, rtol=0)


def test_tta_wraps_any_inferer_and_postprocess():
    x = torch.randn(2, 1, 60, 60)  # valid size: SimpleInferer returns the centred 20x20 output
    out = DihedralTTAInferer(SimpleInferer(), group="dihedral", postprocess=lambda y: torch.softmax(y, 1))(x, NET2D)
    ref = _manual_dihedral_average(lambda t, n: torch.softmax(n(t), 1), NET2D, x)
    assert out.shape == (2, 2, 20, 20)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.sum(1), torch.ones(2, 20, 20), atol=1e-5, rtol=0)


def test_dihedral_tta_output_is_equivariant():
    """Averaging over a group makes the prediction commute with every element of it."""
    x = torch.randn(1, 1, 30, 21)
    tta = DihedralTTAInferer(OverlapTileInferer(roi_size=12))
    base = tta(x, NET2D)
    for t in dihedral_transforms(2)[1:4]:
        torch.testing.assert_close(tta(t.forward(x), NET2D), t.forward(base), atol=1e-4, rtol=0)


def test_tta_3d_flips_equal_manual_average():
    x = torch.randn(1, 1, 7, 5, 9)
    inner = OverlapTileInferer(roi_size=8)
    out = DihedralTTAInferer(inner, group="flips")(x, NET3D)
    preds = []
    for m in range(8):
        axes = [a + 2 for a in range(3) if (m >> a) & 1]
        xf = torch.flip(x, axes) if axes else x
        y = inner(xf, NET3D)
        preds.append(torch.flip(y, axes) if axes else y)
    torch.testing.assert_close(out, torch.stack(preds).mean(0), atol=1e-5, rtol=0)


def test_identity_group_is_the_inner_inferer():
    x = torch.randn(1, 1, 19, 23)
    inner = OverlapTileInferer(roi_size=8)
    torch.testing.assert_close(DihedralTTAInferer(inner, group="identity")(x, NET2D), inner(x, NET2D))


def test_metatensor_metadata_is_kept():
    affine = torch.diag(torch.tensor([0.3, 0.7, 1.0, 1.0], dtype=torch.float64))
    x = MetaTensor(torch.randn(1, 1, 25, 31), affine=affine, meta={"filename_or_obj": "a.tif"})
    out = DihedralTTAInferer(OverlapTileInferer(roi_size=16), group="rot90")(x, NET2D)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "a.tif"
    torch.testing.assert_close(out.affine, affine)
    plain = DihedralTTAInferer(OverlapTileInferer(roi_size=16), group="rot90")(x.as_tensor(), NET2D)
    assert not isinstance(plain, MetaTensor)
    np.testing.assert_allclose(out.numpy(), plain.numpy(), atol=1e-6)


class PoolingValidNet(torch.nn.Module):
    """A valid-padding network of another shape rule than UNet2015's (n -> n - 8 for even n >= 10: border 4,
    step 2): 3x3 conv, 2x2 max pool, 3x3 conv, 2x2 up-convolution, centre-cropped skip, 3x3 conv."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.conv_a, self.conv_b = torch.nn.Conv2d(1, 4, 3), torch.nn.Conv2d(4, 8, 3)
        self.up = torch.nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.conv_c = torch.nn.Conv2d(8, 2, 3)

    def forward(self, x):
        skip = torch.relu(self.conv_a(x))
        y = self.up(torch.relu(self.conv_b(torch.nn.functional.max_pool2d(skip, 2))))
        return self.conv_c(torch.cat([skip[..., 2:-2, 2:-2], y], 1))

    def tiling_geometry(self):
        return ValidPaddingGeometry(border=4, step=2, min_input_size=10)


def test_tta_with_another_valid_padding_network_and_a_plain_function():
    """The geometry's rule holds along every axis, so the rotated copies (axes swapped) tile alike."""
    net = PoolingValidNet().eval()
    x = torch.randn(1, 1, 37, 26)  # non-square, and non-square tiles
    inner = OverlapTileInferer(roi_size=(12, 20), overlap=0.25, sw_batch_size=2)
    tta = DihedralTTAInferer(inner)
    out = tta(x, net)
    assert out.shape == (1, 2, 37, 26)
    torch.testing.assert_close(out, _manual_dihedral_average(inner, net, x), atol=1e-5, rtol=0)
    for t in dihedral_transforms(2)[1:4]:  # the group average is equivariant for this network too
        torch.testing.assert_close(tta(t.forward(x), net), t.forward(out), atol=1e-5, rtol=0)
    stated = OverlapTileInferer(roi_size=12, geometry=net.tiling_geometry())
    plain = DihedralTTAInferer(stated, group="rot90")(x, lambda t: net(t))  # a plain function with its geometry
    torch.testing.assert_close(plain, DihedralTTAInferer(inner, group="rot90")(x, net), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "call,exc",
    [
        (lambda: DihedralTTAInferer(group="rotate"), ValueError),
        (lambda: DihedralTTAInferer(spatial_axes=(1, 1)), ValueError),
        (lambda: DihedralTTAInferer(inferer=3), TypeError),
        (lambda: DihedralTTAInferer(postprocess="softmax"), TypeError),
        (lambda: dihedral_transforms(2, "dihedral", spatial_axes=(0, 2)), ValueError),
        (lambda: dihedral_transforms(0), ValueError),
        (lambda: DihedralTTAInferer()(np.zeros((1, 1, 4, 4)), NET2D), TypeError),
    ],
)
def test_bad_arguments(call, exc):
    with pytest.raises(exc):
        call()

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

import io
import math

import pytest
import torch

from monai_unet2015.networks.nets import (
    UNet2015,
    unet2015_border,
    unet2015_input_size_for_output,
    unet2015_nearest_valid_sizes,
    unet2015_output_size,
    unet2015_valid_input_sizes,
)

TINY = dict(features=(4, 8, 16), dropout=0.0)


def _conv_layers(net):
    kinds = (torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
    return [m for m in net.modules() if isinstance(m, kinds)]


def _slow_output_size(size: int, depth: int) -> int:
    """Independent reference: walk the layers one by one as the paper's Fig. 1 draws them."""
    s = size
    for _ in range(depth - 1):
        s = s - 2 - 2
        if s <= 0 or s % 2:
            return -1
        s //= 2
    s -= 4
    if s <= 0:
        return -1
    for _ in range(depth - 1):
        s = s * 2 - 2 - 2
        if s <= 0:
            return -1
    return s


@pytest.fixture(scope="module")
def full_net():
    torch.manual_seed(0)
    return UNet2015().eval()


def test_paper_tile_572_to_388(full_net):
    with torch.no_grad():
        y = full_net(torch.randn(1, 1, 572, 572))
    assert y.shape == (1, 2, 388, 388)
    assert full_net.border == 92
    assert full_net.output_size(572) == (388, 388)


def test_parameter_and_conv_layer_count(full_net):
    assert sum(p.numel() for p in full_net.parameters()) == 31_030_658
    assert len(_conv_layers(full_net)) == 23


def test_he_initialisation_statistics(full_net):
    for m in _conv_layers(full_net):
        w = m.weight.detach().double()
        if isinstance(m, torch.nn.ConvTranspose2d):
            fan_in = m.in_channels  # 2x2 kernel, stride 2: one input position per output neuron
        else:
            fan_in = m.in_channels * math.prod(m.kernel_size)
        expected = math.sqrt(2.0 / fan_in)
        # relative standard error of a sample std is ~1/sqrt(2n): allow 5 of them, at least 2 %
        tol = max(0.02, 5.0 / math.sqrt(2 * w.numel()))
        assert abs(w.std().item() / expected - 1) < tol, (m, w.std().item(), expected)
        assert abs(w.mean().item()) < 5 * expected / math.sqrt(w.numel())
        assert torch.count_nonzero(m.bias) == 0


def test_3d_variant_shapes():
    net = UNet2015(spatial_dims=3, in_channels=2, out_channels=3, **TINY).eval()
    with torch.no_grad():
        y = net(torch.randn(1, 2, 44, 48, 52))
    assert y.shape == (1, 3, 4, 8, 12)
    assert len(_conv_layers(net)) == 2 * 5 + 2 + 1
    deep = UNet2015(spatial_dims=3, features=(2, 4, 8, 16, 32), dropout=0.0).eval()
    with torch.no_grad():
        assert deep(torch.randn(1, 1, 188, 188, 204)).shape == (1, 2, 4, 4, 20)


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_size_helpers_agree_with_forward(depth):
    feats = tuple(2 ** (i + 1) for i in range(depth))
    net = UNet2015(features=feats, dropout=0.0).eval()
    valid = unet2015_valid_input_sizes(depth, count=4, start=1)
    assert valid == [s for s in range(1, valid[-1] + 1) if _slow_output_size(s, depth) > 0][:4]
    for s in list(range(valid[0] - 3, valid[0] + 3 * 2 ** (depth - 1) + 2)):
        expected = _slow_output_size(s, depth)
        assert unet2015_output_size(s, depth) == expected
        if expected > 0:
            with torch.no_grad():
                y = net(torch.zeros(1, 1, s, valid[0]))
            assert y.shape[2:] == (expected, unet2015_output_size(valid[0], depth))
            assert s - expected == 2 * unet2015_border(depth) == 2 * net.border
        else:
            with pytest.raises(ValueError, match="nearest valid"):
                net(torch.zeros(1, 1, s, valid[0]))
    for out in range(1, 40):
        inp = unet2015_input_size_for_output(out, depth)
        assert _slow_output_size(inp, depth) >= out
        assert all(_slow_output_size(s, depth) < out for s in range(1, inp))


def test_paper_valid_sizes_are_16n_plus_124():
    sizes = unet2015_valid_input_sizes(5, count=50, start=1)
    assert sizes[0] == 188 and all((s - 124) % 16 == 0 for s in sizes)
    assert unet2015_input_size_for_output(388) == 572
    assert unet2015_input_size_for_output(389) == 588
    assert unet2015_nearest_valid_sizes(570) == (556, 572)
    assert unet2015_nearest_valid_sizes(572) == (572, 572)
    assert unet2015_nearest_valid_sizes(100) == (-1, 188)


def test_invalid_size_error_names_nearest_valid_sizes():
    net = UNet2015(**TINY)
    valid = net.valid_input_sizes(count=3)
    bad = valid[1] + 1
    with pytest.raises(ValueError, match=rf"{valid[1]} or {valid[2]}"):
        net(torch.zeros(1, 1, bad, valid[0]))
    with pytest.raises(ValueError, match="spatial dims"):
        net(torch.zeros(1, valid[0], valid[0]))
    with pytest.raises(ValueError, match="nearest valid lengths: 188"):
        UNet2015().output_size((100, 572))
    with pytest.raises(ValueError, match="features"):
        UNet2015(features=(64,))
    with pytest.raises(ValueError, match="dropout"):
        UNet2015(dropout=1.5)


def test_invalid_size_raises_before_any_computation(monkeypatch):
    net = UNet2015(**TINY)

    def boom(*args, **kwargs):
        raise AssertionError("computation started")

    monkeypatch.setattr(net.conv_0, "forward", boom)
    with pytest.raises(ValueError, match="nearest valid"):
        net(torch.zeros(1, 1, 45, 44))


def test_torchscript_round_trip():
    torch.manual_seed(1)
    net = UNet2015(in_channels=2, out_channels=3, features=(4, 8, 16, 32), dropout=0.5).eval()
    scripted = torch.jit.script(net)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    x = torch.randn(2, 2, 92, 108)
    with torch.no_grad():
        ref = net(x)
        torch.testing.assert_close(loaded(x), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="nearest valid"):
        loaded(torch.randn(1, 2, 93, 108))


def test_gradients_reach_first_layer():
    torch.manual_seed(2)
    net = UNet2015(**TINY).train()
    y = net(torch.randn(2, 1, 48, 48))
    torch.nn.functional.cross_entropy(y, torch.randint(0, 2, (2, 8, 8))).backward()
    first = net.conv_0.conv_0.conv.weight
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())


def test_dropout_sits_at_end_of_contracting_path():
    net = UNet2015(features=(4, 8, 16), dropout=0.5)
    assert type(net.dropout) is torch.nn.Dropout  # element-wise, as in the authors' Caffe model
    x = torch.randn(1, 1, 48, 48)
    net.train()
    torch.manual_seed(0)
    a = net(x)
    b = net(x)
    assert not torch.allclose(a, b)
    net.eval()
    torch.testing.assert_close(net(x), net(x))


@pytest.mark.parametrize("dtype", [torch.bfloat16])
def test_autocast_cpu(dtype):
    torch.manual_seed(3)
    net = UNet2015(**TINY).eval()
    x = torch.randn(1, 1, 52, 52)
    with torch.no_grad():
        ref = net(x)
        with torch.autocast("cpu", dtype=dtype):
            y = net(x)
    assert y.dtype == dtype and y.shape == ref.shape
    assert (y.float() - ref).abs().max() < 0.05 * ref.abs().max() + 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_cuda(dtype):
    net = UNet2015(**TINY).eval().cuda()
    x = torch.randn(1, 1, 52, 52, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        y = net(x)
    assert y.dtype == dtype and y.shape == (1, 2, 12, 12)


@pytest.mark.parametrize("depth,spatial_dims", [(2, 2), (3, 2), (4, 3), (5, 2)])
def test_tiling_geometry_agrees_with_the_size_methods(depth, spatial_dims):
    from monai_unet2015.inferers import TilingGeometry, UNet2015Geometry

    feats = tuple(2 ** (i + 1) for i in range(depth))
    net = UNet2015(spatial_dims=spatial_dims, features=feats, dropout=0.0)
    geometry = net.tiling_geometry()
    assert isinstance(geometry, TilingGeometry) and geometry == UNet2015Geometry(depth, first_width=2)
    assert geometry.border == net.border and geometry.step == 2 ** (depth - 1)
    smallest = net.valid_input_sizes(count=1)[0]
    for s in range(1, smallest + 4 * geometry.step):
        expected = _slow_output_size(s, depth)
        assert geometry.output_size(s) == (expected if expected > 0 else -1)
        assert geometry.nearest_valid_sizes(s) == unet2015_nearest_valid_sizes(s, depth)
        if expected > 0:
            assert net.output_size(s) == (expected,) * spatial_dims and s - expected == 2 * geometry.border
    for out in range(1, 40):
        assert (geometry.input_size_for_output(out),) * spatial_dims == net.input_size_for_output(out)
    # the pooling grid: a valid length shifted by one step is valid again, by less it is not
    assert geometry.output_size(smallest + geometry.step) == geometry.output_size(smallest) + geometry.step
    assert all(geometry.output_size(smallest + k) < 1 for k in range(1, geometry.step))


@pytest.mark.filterwarnings("ignore:`torch.jit")
def test_tiling_geometry_does_not_hinder_torchscript():
    net = UNet2015(**TINY).eval()
    scripted = torch.jit.script(net)  # the method is @torch.jit.unused
    assert scripted.tiling_geometry() == net.tiling_geometry()
    x = torch.randn(1, 1, 60, 60)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))

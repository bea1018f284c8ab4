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

"""WeightedCrossEntropyLoss against torch.nn.CrossEntropyLoss and a direct formula."""

from __future__ import annotations

import math

import pytest
import torch

from monai.data import MetaTensor
from monai.networks import one_hot
from monai_unet2015.losses import WeightedCrossEntropyLoss, center_crop_to


def direct_loss(logits, indices, weight_map=None, class_weight=None, reduction="mean"):
    """Eq. 1 of the paper written out with exp/log, element by element (float64)."""
    logits = logits.double()
    b, c = logits.shape[:2]
    flat = logits.reshape(b, c, -1)
    idx = indices.reshape(b, -1)
    wmap = None if weight_map is None else weight_map.double().reshape(b, -1)
    total, norm = 0.0, 0.0
    values = torch.zeros(b, flat.shape[2], dtype=torch.float64)
    for n in range(b):
        for p in range(flat.shape[2]):
            z = flat[n, :, p]
            log_p = z[idx[n, p]] - math.log(sum(math.exp(float(v)) for v in z))
            cw = 1.0 if class_weight is None else float(class_weight[idx[n, p]])
            wm = 1.0 if wmap is None else float(wmap[n, p])
            values[n, p] = -cw * wm * log_p
            total += float(values[n, p])
            norm += cw
    if reduction == "none":
        return values.reshape((b, 1) + tuple(indices.shape[1:]))
    return torch.tensor(total if reduction == "sum" else total / norm, dtype=torch.float64)


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, generator=g)
    indices = torch.randint(0, 3, (2, 5, 6), generator=g)
    weight_map = torch.rand(2, 1, 5, 6, generator=g) * 5
    return logits, indices, weight_map


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("class_weight", [None, (0.2, 1.0, 3.0)])
def test_equals_torch_cross_entropy_without_weight_map(data, reduction, class_weight):
    logits, indices, _ = data
    cw = None if class_weight is None else torch.tensor(class_weight)
    expected = torch.nn.CrossEntropyLoss(weight=cw, reduction=reduction)(logits, indices)
    loss_fn = WeightedCrossEntropyLoss(weight=class_weight, reduction=reduction)
    for target in (indices[:, None], indices, one_hot(indices[:, None], 3)):
        loss = loss_fn(logits, target)
        if reduction == "none":
            loss = loss[:, 0]
        torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("class_weight", [None, (0.5, 2.0, 1.0)])
def test_matches_direct_formula_with_weight_map(data, reduction, class_weight):
    logits, indices, weight_map = data
    loss = WeightedCrossEntropyLoss(weight=class_weight, reduction=reduction)(logits, indices[:, None], weight_map)
    expected = direct_loss(logits, indices, weight_map, class_weight, reduction)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)


def test_weight_map_of_ones_is_plain_cross_entropy(data):
    logits, indices, _ = data
    loss = WeightedCrossEntropyLoss()(logits, indices[:, None], torch.ones(2, 1, 5, 6))
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, indices))
    # (B, *spatial) weight maps are accepted too
    loss2 = WeightedCrossEntropyLoss()(logits, indices[:, None], torch.ones(2, 5, 6))
    torch.testing.assert_close(loss2, loss)


def test_centre_crop_of_target_and_weight_map(data):
    logits, indices, weight_map = data
    big_idx = torch.randint(0, 3, (2, 1, 9, 12))
    big_idx[:, :, 2:7, 3:9] = indices[:, None]
    big_map = torch.rand(2, 1, 9, 12)
    big_map[:, :, 2:7, 3:9] = weight_map
    loss_fn = WeightedCrossEntropyLoss(reduction="none")
    torch.testing.assert_close(loss_fn(logits, big_idx, big_map), loss_fn(logits, indices[:, None], weight_map))
    # one-hot targets are cropped the same way
    torch.testing.assert_close(
        loss_fn(logits, one_hot(big_idx, 3), big_map), loss_fn(logits, indices[:, None], weight_map)
    )


@pytest.mark.parametrize("target_hw, map_hw", [((8, 6), (5, 6)), ((5, 6), (6, 6)), ((3, 6), (5, 6)), ((5, 6), (5, 4))])
def test_bad_margins_raise(data, target_hw, map_hw):
    logits, _, _ = data
    target = torch.zeros((2, 1) + target_hw, dtype=torch.long)
    weight_map = torch.ones((2, 1) + map_hw)
    with pytest.raises(ValueError, match="margin"):
        WeightedCrossEntropyLoss()(logits, target, weight_map)


def test_center_crop_to():
    x = torch.arange(100.0).reshape(1, 1, 10, 10)
    torch.testing.assert_close(center_crop_to(x, (6, 4)), x[:, :, 2:8, 3:7])
    with pytest.raises(ValueError, match="axis 1"):
        center_crop_to(x, (6, 5))


def test_weight_map_is_its_own_argument(data):
    """The weight map travels beside the label, not inside it (issue 13): the third argument, positional or by
    keyword, with index, float-index or one-hot labels; a label with an extra weight channel is refused."""
    logits, indices, weight_map = data
    loss_fn = WeightedCrossEntropyLoss()
    explicit = loss_fn(logits, indices[:, None], weight_map)
    torch.testing.assert_close(explicit.double(), direct_loss(logits, indices, weight_map), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss_fn(logits, indices[:, None], weight_map=weight_map), explicit)
    torch.testing.assert_close(loss_fn(logits, indices[:, None].float(), weight_map), explicit)
    # one-hot label with the map: C channels, the map separately
    torch.testing.assert_close(loss_fn(logits, one_hot(indices[:, None], 3), weight_map), explicit)
    # the label is the label: a weight map smuggled in as a last channel is not split off
    for label in (indices[:, None].float(), one_hot(indices[:, None], 3)):
        with pytest.raises(ValueError, match="channels"):
            loss_fn(logits, torch.cat([label, weight_map], dim=1))
    with pytest.raises(TypeError, match="weight_map_in_target"):
        WeightedCrossEntropyLoss(weight_map_in_target=True)


def test_gradient_is_weighted_cross_entropy_gradient(data):
    logits, indices, weight_map = data
    x = logits.clone().requires_grad_(True)
    WeightedCrossEntropyLoss(reduction="sum")(x, indices[:, None], weight_map).backward()
    # d/dz of -w log softmax(z)_y = w * (softmax(z) - onehot(y))
    expected = weight_map * (torch.softmax(logits, 1) - one_hot(indices[:, None], 3))
    torch.testing.assert_close(x.grad, expected, rtol=1e-5, atol=1e-6)


def test_3d_and_meta_tensor_inputs():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 2, 3, 4, 5, generator=g)
    indices = torch.randint(0, 2, (1, 1, 5, 6, 7), generator=g)
    weight_map = torch.rand(1, 1, 5, 6, 7, generator=g)
    loss = WeightedCrossEntropyLoss()(MetaTensor(logits), MetaTensor(indices.float()), MetaTensor(weight_map))
    assert type(loss) is torch.Tensor
    expected = direct_loss(logits, indices[:, 0, 1:4, 1:5, 1:6], weight_map[:, :, 1:4, 1:5, 1:6])
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)


def test_stable_under_bf16_autocast_and_half_inputs(data):
    logits, indices, weight_map = data
    conv = torch.nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).reshape(3, 3, 1, 1) * 40.0)  # large logits: softmax in bf16 would saturate
        conv.bias.zero_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(logits)
        assert out.dtype == torch.bfloat16
        loss = WeightedCrossEntropyLoss()(out, indices[:, None], weight_map)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    reference = direct_loss(out.detach().float(), indices, weight_map)
    torch.testing.assert_close(loss.double(), reference, rtol=1e-5, atol=1e-5)
    half = (logits * 40).half()
    loss_half = WeightedCrossEntropyLoss()(half, indices[:, None], weight_map)
    assert loss_half.dtype == torch.float32
    torch.testing.assert_close(loss_half.double(), direct_loss(half.float(), indices, weight_map), rtol=1e-5, atol=1e-5)


def test_bad_inputs(data):
    logits, indices, weight_map = data
    with pytest.raises(ValueError, match="to_onehot_y"):
        WeightedCrossEntropyLoss(to_onehot_y=True)(logits, one_hot(indices[:, None], 3))
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        WeightedCrossEntropyLoss()(logits, indices[:, None] + 1)
    with pytest.raises(ValueError, match="channels"):
        WeightedCrossEntropyLoss()(logits, torch.zeros(2, 2, 5, 6))
    with pytest.raises(ValueError, match="class weights"):
        WeightedCrossEntropyLoss(weight=(1.0, 2.0))(logits, indices[:, None])
    with pytest.raises(ValueError, match=">= 2 channels"):
        WeightedCrossEntropyLoss()(logits[:, :1], indices[:, None])
    with pytest.raises(ValueError, match="weight_map"):
        WeightedCrossEntropyLoss()(logits, indices[:, None], torch.ones(2, 2, 5, 6))
    with pytest.raises(ValueError, match="batch size"):
        WeightedCrossEntropyLoss()(logits, indices[:1, None])
    with pytest.raises(ValueError, match="weight"):
        WeightedCrossEntropyLoss(weight=(1.0, -1.0, 1.0))
    with pytest.raises(ValueError):
        WeightedCrossEntropyLoss(reduction="average")
    # to_onehot_y=True with indices is fine
    torch.testing.assert_close(
        WeightedCrossEntropyLoss(to_onehot_y=True)(logits, indices[:, None]),
        torch.nn.functional.cross_entropy(logits, indices),
    )


def test_class_weight_buffer_moves_with_module():
    loss_fn = WeightedCrossEntropyLoss(weight=(1.0, 2.0))
    assert "class_weight" in dict(loss_fn.named_buffers())
    loss_fn = loss_fn.double()
    assert loss_fn.class_weight.dtype == torch.float64

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
from monai.transforms import Compose, Invertd

from monai_unet2015.transforms import (
    MirrorPad,
    MirrorPadd,
    MirrorPadD,
    MirrorPadDict,
    mirror_crop,
    mirror_indices,
    mirror_pad,
)


def _slow_reflect(i: int, length: int) -> int:
    """Walk back and forth along the axis one mirror at a time (independent of the modulo formula)."""
    if length == 1:
        return 0
    while i < 0 or i >= length:
        i = -i if i < 0 else 2 * (length - 1) - i
    return i


def test_mirror_indices_hand_computed():
    # a b c d -> d c b | a b c d | c b a b c
    assert mirror_indices(4, 3, 5).tolist() == [3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert mirror_indices(2, 3, 2).tolist() == [1, 0, 1, 0, 1, 0, 1]
    assert mirror_indices(1, 2, 1).tolist() == [0, 0, 0, 0]
    assert mirror_indices(5, 0, 0).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("length", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("before,after", [(0, 0), (1, 0), (4, 9), (20, 3), (33, 47)])
def test_mirror_indices_match_numpy_reflect_and_slow_walk(length, before, after):
    idx = mirror_indices(length, before, after)
    assert idx.dtype == torch.int64 and idx.numel() == before + length + after
    ref = np.pad(np.arange(length), (before, after), mode="reflect")
    np.testing.assert_array_equal(idx.numpy(), ref)
    slow = [_slow_reflect(i, length) for i in range(-before, length + after)]
    assert idx.tolist() == slow


@pytest.mark.parametrize(
    "shape,border",
    [
        ((2, 5, 7), 3),
        ((1, 3, 2), (10, 13)),  # pads several times larger than the image
        ((1, 1, 4), (2, 3, 7, 0)),  # a length-1 axis, asymmetric pads
        ((1, 4, 3, 5), (9, 1, 0, 6, 11, 2)),  # 3D
        ((3, 6, 6), 0),
    ],
)
def test_mirror_pad_matches_numpy(shape, border):
    rng = np.random.default_rng(0)
    img = rng.random(shape).astype(np.float32)
    nsp = len(shape) - 1
    b = (border,) if isinstance(border, int) else border
    widths = [(b[0], b[0])] * nsp if len(b) == 1 else (
        [(x, x) for x in b] if len(b) == nsp else [(b[2 * i], b[2 * i + 1]) for i in range(nsp)]
    )
    ref = np.pad(img, [(0, 0)] + widths, mode="reflect")
    out = mirror_pad(torch.from_numpy(img), border)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), ref)
    out_np = mirror_pad(img, border)
    assert isinstance(out_np, np.ndarray)
    np.testing.assert_array_equal(out_np, ref)


def test_mirror_pad_keeps_integer_dtype_and_batch_axes():
    img = torch.arange(24, dtype=torch.int16).reshape(2, 1, 3, 4)  # (N, C, H, W)
    out = mirror_pad(img, (5, 6), spatial_dims=2)
    assert out.dtype == torch.int16 and out.shape == (2, 1, 13, 16)
    ref = np.pad(img.numpy(), [(0, 0), (0, 0), (5, 5), (6, 6)], mode="reflect")
    np.testing.assert_array_equal(out.numpy(), ref)
    # no padding still gives a new tensor, not a view of the input
    same = mirror_pad(img, 0, spatial_dims=2)
    same[0, 0, 0, 0] = 99
    assert img[0, 0, 0, 0] == 0


def test_mirror_crop_is_a_window_of_the_padded_image():
    rng = np.random.default_rng(1)
    img = rng.random((2, 6, 5))
    big = np.pad(img, [(0, 0), (40, 80), (40, 80)], mode="reflect")
    for _ in range(40):
        size = rng.integers(1, 30, size=2)
        start = rng.integers(-40, 30, size=2)
        out = mirror_crop(torch.from_numpy(img), start.tolist(), size.tolist())
        ref = big[:, 40 + start[0] : 40 + start[0] + size[0], 40 + start[1] : 40 + start[1] + size[1]]
        np.testing.assert_array_equal(out.numpy(), ref)


def test_mirror_crop_inside_is_a_view_and_gathers_only_the_window():
    img = torch.rand(1, 50, 60)
    inside = mirror_crop(img, (3, 4), (10, 20))
    assert inside.data_ptr() == img[:, 3:, 4:].data_ptr()  # a view, no copy
    border = mirror_crop(img, (-5, 55), (10, 20))
    assert border.shape == (1, 10, 20) and border.is_contiguous()
    ref = np.pad(img.numpy(), [(0, 0), (5, 5), (0, 15)], mode="reflect")[:, 0:10, 55:75]
    np.testing.assert_array_equal(border.numpy(), ref)


def test_mirror_crop_3d_and_broadcast_int_arguments():
    img = torch.rand(1, 3, 4, 5)
    out = mirror_crop(img, -7, 20)
    ref = np.pad(img.numpy(), [(0, 0)] + [(7, 20)] * 3, mode="reflect")[:, :20, :20, :20]
    np.testing.assert_array_equal(out.numpy(), ref)


@pytest.mark.parametrize(
    "call,exc",
    [
        (lambda: mirror_indices(0, 1, 1), ValueError),
        (lambda: mirror_indices(3, -1, 0), ValueError),
        (lambda: mirror_indices(3, 1.5, 0), TypeError),
        (lambda: mirror_pad(torch.zeros(1, 3, 3), -2), ValueError),
        (lambda: mirror_pad(torch.zeros(1, 3, 3), (1, 2, 3)), ValueError),
        (lambda: mirror_pad(torch.zeros(1, 0, 3), 2), ValueError),
        (lambda: mirror_crop(torch.zeros(1, 3, 3), (0, 0), (0, 2)), ValueError),
        (lambda: mirror_crop(torch.zeros(1, 3, 3), (0, 0, 0), (2, 2, 2)), ValueError),
        (lambda: MirrorPad(2.5), TypeError),
    ],
)
def test_bad_arguments_raise_clear_errors(call, exc):
    with pytest.raises(exc):
        call()


def test_mirror_pad_transform_updates_affine_and_inverts():
    affine = torch.tensor([[2.0, 0, 0, 10], [0, 3.0, 0, -4], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    img = MetaTensor(torch.rand(1, 5, 6), affine=affine, meta={"filename_or_obj": "x.png"})
    pad = MirrorPad((7, 1, 2, 9))
    out = pad(img)
    assert isinstance(out, MetaTensor) and out.shape == (1, 13, 17)
    np.testing.assert_array_equal(out.numpy(), np.pad(img.numpy(), [(0, 0), (7, 1), (2, 9)], mode="reflect"))
    # the first padded pixel sits 7 / 2 pixels before the old origin, in world units
    assert torch.allclose(out.affine[:2, 3], torch.tensor([10 - 7 * 2.0, -4 - 2 * 3.0], dtype=torch.float64))
    assert out.meta["filename_or_obj"] == "x.png"
    assert out.applied_operations[-1]["class"] == "MirrorPad"
    back = pad.inverse(out)
    assert back.shape == img.shape and torch.equal(back.as_tensor(), img.as_tensor())
    assert torch.allclose(back.affine, affine)
    assert back.applied_operations == []


def test_mirror_padd_with_invertd_and_aliases():
    assert MirrorPadD is MirrorPadd and MirrorPadDict is MirrorPadd
    pre = Compose([MirrorPadd(keys=["image", "label"], spatial_border=(30, 4))])
    data = {"image": MetaTensor(torch.rand(1, 6, 5)), "label": MetaTensor(torch.randint(0, 2, (1, 6, 5)).float())}
    out = pre(data)
    assert out["image"].shape == (1, 66, 13) and out["label"].shape == (1, 66, 13)
    out["pred"] = out["image"] * 2
    inv = Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=False)(out)
    assert inv["pred"].shape == (1, 6, 5)
    assert torch.allclose(inv["pred"].as_tensor(), data["image"].as_tensor() * 2)


def test_mirror_pad_transform_on_numpy_and_plain_tensor():
    img = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    out = MirrorPad(4)(img)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(np.asarray(out), np.pad(img, [(0, 0), (4, 4), (4, 4)], mode="reflect"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mirror_pad_on_gpu_matches_cpu():
    img = torch.rand(2, 5, 4, 3)
    out = mirror_pad(img.cuda(), (9, 2, 0, 11, 3, 3))
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), mirror_pad(img, (9, 2, 0, 11, 3, 3)))

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

"""Tests of the paper's augmentation pipeline: which key gets what, alignment on real labels, seeding."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai.transforms import Compose, RandAdjustContrastd, RandAffined, RandScaleIntensityd, RandShiftIntensityd
from monai_unet2015.transforms import RandGridElasticd, unet2015_train_augmentation
from monai_unet2015.transforms import presets as presets_module

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _isbi_pair(index: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    img_path = DATA / "isbi2012" / "train" / "image" / f"{index:02d}.png"
    lab_path = DATA / "isbi2012" / "train" / "label" / f"{index:02d}.png"
    if not img_path.exists() or not lab_path.exists():
        pytest.skip(f"real data not found: {img_path.parent} (expected ../shared/data beside the repository)")
    img = torch.from_numpy(np.asarray(Image.open(img_path), dtype=np.float32) / 255.0)[None]
    lab = torch.from_numpy((np.asarray(Image.open(lab_path)) > 127).astype(np.int64))[None]
    return img, lab


def test_structure_and_key_routing():
    aug = unet2015_train_augmentation("image", "label", "weight", flip_prob=0.5, crop_size=64)
    assert isinstance(aug, Compose)
    names = [type(t).__name__ for t in aug.transforms]
    assert names == [
        "RandGridElasticd", "RandAffined", "RandFlipd", "RandFlipd", "RandScaleIntensityd", "RandShiftIntensityd",
        "RandAdjustContrastd", "SpatialPadd", "RandSpatialCropd",
    ]
    elastic = aug.transforms[0]
    assert isinstance(elastic, RandGridElasticd)
    assert elastic.keys == ("image", "label", "weight")
    assert elastic.mode == ("bilinear", "nearest", "bilinear") and elastic.prob == 1.0
    assert elastic.rand_elastic.sigma == 10.0 and elastic.rand_elastic.grid_size == 3
    affine = aug.transforms[1]
    assert isinstance(affine, RandAffined) and affine.keys == ("image", "label", "weight")
    assert tuple(affine.mode) == ("bilinear", "nearest", "bilinear")
    for t in aug.transforms[4:7]:
        assert isinstance(t, (RandScaleIntensityd, RandShiftIntensityd, RandAdjustContrastd))
        assert t.keys == ("image",)  # gray values of the image only
    # steps switch off
    bare = unet2015_train_augmentation("image", None, elastic_sigma=0.0, rotate_range=0.0, shift_range=0.0,
                                       intensity_prob=0.0)
    assert len(bare.transforms) == 0
    cubic = unet2015_train_augmentation("image", "label", image_mode="bicubic")
    assert cubic.transforms[0].mode == ("bicubic", "nearest")


def test_intensity_only_touches_images():
    gen = torch.Generator().manual_seed(0)
    data = {"image": torch.rand(1, 40, 40, generator=gen), "label": torch.randint(0, 4, (1, 40, 40), generator=gen),
            "weight": torch.rand(1, 40, 40, generator=gen)}
    aug = unet2015_train_augmentation("image", "label", "weight", elastic_sigma=0.0, rotate_range=0.0,
                                      shift_range=0.0, intensity_prob=1.0).set_random_state(1)
    out = aug(data)
    assert not torch.allclose(out["image"], data["image"])
    assert torch.equal(out["label"], data["label"]) and torch.equal(out["weight"], data["weight"])


def test_full_pipeline_on_real_labels():
    img, lab = _isbi_pair(0)
    weight = 1.0 + 9.0 * (1 - lab).float()  # some map with a known range [1, 10]
    image_from_label = lab.float()
    aug = unet2015_train_augmentation(
        ("image", "probe"), "label", "weight", intensity_prob=0.0, crop_size=572
    ).set_random_state(4)
    out = aug({"image": img, "probe": image_from_label, "label": lab, "weight": weight})
    assert out["image"].shape == (1, 572, 572) and out["label"].shape == (1, 572, 572)  # 512 mirrored to 572
    assert set(out["label"].unique().tolist()) <= {0, 1}  # nearest in both spatial steps
    assert out["weight"].min() >= 1.0 - 1e-5 and out["weight"].max() <= 10.0 + 1e-5  # bilinear: no overshoot
    # image and label stay aligned through elastic + rotation + shift + crop
    mismatch = ((out["probe"] > 0.5) != (out["label"] > 0)).float().mean().item()
    assert mismatch < 0.02, mismatch
    assert (out["label"][:, 30:542, 30:542] != lab).float().mean() > 0.05  # it really moved


def test_seeded_pipeline_is_reproducible():
    gen = torch.Generator().manual_seed(2)
    data = {"image": torch.rand(1, 48, 48, generator=gen), "label": torch.randint(0, 3, (1, 48, 48), generator=gen)}
    a = unet2015_train_augmentation().set_random_state(9)
    b = unet2015_train_augmentation().set_random_state(9)
    c = unet2015_train_augmentation().set_random_state(10)
    out_a, out_b, out_c = a(data), b(data), c(data)
    assert torch.equal(out_a["image"], out_b["image"]) and torch.equal(out_a["label"], out_b["label"])
    assert not torch.allclose(out_a["image"], out_c["image"])


def test_3d_pipeline():
    gen = torch.Generator().manual_seed(3)
    data = {
        "image": torch.rand(1, 12, 24, 20, generator=gen),
        "label": torch.randint(0, 3, (1, 12, 24, 20), generator=gen),
    }
    aug = unet2015_train_augmentation(spatial_dims=3, elastic_sigma=(1.0, 3.0, 3.0), shift_range=(0, 4, 4))
    out = aug.set_random_state(0)(data)
    assert out["image"].shape == (1, 12, 24, 20)
    assert set(out["label"].unique().tolist()) <= {0, 1, 2}
    assert aug.transforms[0].rand_elastic.sigma == (1.0, 3.0, 3.0)
    with pytest.raises(ValueError, match="bicubic"):
        unet2015_train_augmentation(spatial_dims=3, image_mode="bicubic")


def test_bad_arguments():
    with pytest.raises(ValueError, match="spatial_dims"):
        unet2015_train_augmentation(spatial_dims=1)
    with pytest.raises(ValueError, match="only one of"):
        unet2015_train_augmentation("image", "image")
    with pytest.raises(ValueError, match="image_keys"):
        unet2015_train_augmentation(None)
    with pytest.raises(ValueError, match="elastic_prob"):
        unet2015_train_augmentation(elastic_prob=1.5)
    with pytest.raises(ValueError, match="padding_mode"):
        unet2015_train_augmentation(padding_mode="mirror")


def test_doctests():
    result = doctest.testmod(presets_module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


def test_scale_range_scales_every_axis():
    # a centred bright square of 21 pixels, scaled only (no elastic, rotation or shift): the affine that MONAI
    # records in the output's metadata holds the drawn factor f per axis (in [0.7, 1.3]), and the square's extent
    # along that axis must be 21 / f pixels
    image = MetaTensor(torch.zeros(1, 101, 101))
    image[:, 40:61, 40:61] = 1.0
    aug = unet2015_train_augmentation("image", None, elastic_sigma=0.0, rotate_range=0.0, shift_range=0.0,
                                      scale_range=0.3, intensity_prob=0.0)
    assert isinstance(aug.transforms[0], RandAffined) and len(aug.transforms) == 1
    drawn = set()
    for seed in range(6):
        out = aug.set_random_state(seed)({"image": image})["image"]
        factors = torch.diagonal(out.affine)[:2].tolist()
        assert all(0.7 <= f <= 1.3 for f in factors) and torch.count_nonzero(out.affine[:2, :2]) == 2
        for axis, factor in enumerate(factors):
            extent = float((out[0].amax(dim=1 - axis) > 0.5).sum())
            assert abs(extent - 21 / factor) <= 1.5, (seed, axis, factor, extent)
        drawn.add(tuple(round(f, 3) for f in factors))
    assert len(drawn) == 6 and any(abs(a - b) > 0.01 for a, b in drawn)  # drawn per axis, not one factor
    with pytest.raises(ValueError, match="scale_range"):
        unet2015_train_augmentation("image", None, scale_range=1.5)

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

"""Instance labels (monai_unet2015.transforms.instances): hand-made masks with known components in 2D and 3D,
scikit-image as an independent reference, types and metadata, and equality with the bundles' former
post-processing lambda on a real DIC-HeLa frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import monai
import monai_unet2015
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import Lambdad
from monai.utils import TransformBackends
from monai_unet2015.transforms import (
    LabelInstances,
    LabelInstancesd,
    LabelInstancesD,
    LabelInstancesDict,
    label_instances,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DIC_FRAME = DATA / "dic-hela" / "01" / "t010.tif"
needs_dic = pytest.mark.skipif(not DIC_FRAME.is_file(), reason=f"DIC-HeLa frame not found at {DIC_FRAME}")

# The cells bundle's post-processing before LabelInstancesd replaced it (configs/*.json, "Lambdad" on the mask).
BUNDLE_LAMBDA = (
    "$lambda x: monai.data.MetaTensor(torch.as_tensor(monai_unet2015.transforms.weight_map.label_instances("
    "x[0].detach().cpu().numpy() > 0, 'binary', @connectivity)[0][None]), meta=getattr(x, 'meta', None))"
)


def _bundle_lambda(connectivity: int):
    parser = ConfigParser(
        {"connectivity": connectivity, "func": BUNDLE_LAMBDA},
        globals={"monai": monai, "torch": torch, "monai_unet2015": monai_unet2015},
    )
    return parser.get_parsed_content("func")


def _disc(shape, centre, radius):
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


def _two_discs() -> np.ndarray:
    return (_disc((20, 30), (10, 7), 6) | _disc((20, 30), (10, 21), 5)).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# hand-made cases
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("connectivity", [1, 2, None])
def test_two_separate_discs_give_two_labels(connectivity):
    mask = _two_discs()
    out = LabelInstances(connectivity=connectivity)(mask[None])
    assert out.shape == (1, 20, 30) and out.dtype == np.int32
    assert sorted(np.unique(out).tolist()) == [0, 1, 2]
    np.testing.assert_array_equal(out[0] > 0, mask > 0)  # background stays 0, every mask pixel labelled
    # numbered in raster order: the left disc reaches one row higher, so it comes first
    assert np.unique(out[0][_disc((20, 30), (10, 7), 6)]).tolist() == [1]
    assert np.unique(out[0][_disc((20, 30), (10, 21), 5)]).tolist() == [2]


def test_diagonal_touching_depends_on_connectivity():
    mask = np.zeros((1, 6, 6), np.uint8)
    mask[0, 1:3, 1:3] = 1
    mask[0, 3:5, 3:5] = 1  # touches the first square at one corner only
    assert int(LabelInstances(connectivity=1)(mask).max()) == 2  # 4-neighbourhood: two instances
    assert int(LabelInstances(connectivity=2)(mask).max()) == 1  # 8-neighbourhood: one
    assert int(LabelInstances()(mask).max()) == 1  # default: full neighbourhood
    np.testing.assert_array_equal(LabelInstances(connectivity=1)(mask)[0, 3:5, 3:5], 2)


def test_3d_cubes_touching_at_a_corner():
    mask = np.zeros((1, 6, 6, 6), bool)
    mask[0, 0:2, 0:2, 0:2] = True
    mask[0, 2:4, 2:4, 2:4] = True  # shares one corner with the first cube
    mask[0, 5, 5, 5] = True  # an isolated voxel
    assert [int(LabelInstances(connectivity=c)(mask).max()) for c in (1, 2, 3)] == [3, 3, 2]
    out = LabelInstancesd(keys="mask", connectivity=1)({"mask": torch.as_tensor(mask)})["mask"]
    assert out.shape == (1, 6, 6, 6) and out.dtype == torch.int32
    assert int(out[0, 5, 5, 5]) == 3 and int(out[0, 0, 0, 0]) == 1
    with pytest.raises(ValueError, match="connectivity"):
        LabelInstances(connectivity=4)(mask)  # 3 spatial dimensions at most


def test_label_types():
    # moved from test_weight_map.py: one instance id in two pieces
    lab = np.zeros((6, 12), np.int32)
    lab[1:5, 1:4] = 3
    lab[1:5, 8:11] = 3
    assert label_instances(lab, "instance")[1] == 1
    assert label_instances(lab, "binary")[1] == 2
    assert label_instances(lab)[1] == 2  # "auto": a single non-zero value reads as a binary mask
    # instance ids are renumbered 1..N in increasing order, as skimage.segmentation.relabel_sequential
    ids = np.array([[0, 7, 7, 0], [40, 40, 0, 3], [0, 0, 0, 3]])
    out = LabelInstances(label_type="instance")(ids[None])
    np.testing.assert_array_equal(out[0], [[0, 2, 2, 0], [3, 3, 0, 1], [0, 0, 0, 1]])
    np.testing.assert_array_equal(LabelInstances(label_type="auto")(ids[None]), out)
    assert int(LabelInstances(connectivity=1)(ids[None]).max()) == 2  # "binary" (default): components of ids > 0


def test_channels_are_labelled_independently():
    mask = np.stack([_two_discs(), np.zeros((20, 30), np.uint8), _disc((20, 30), (10, 15), 4)])
    out = LabelInstances()(mask)
    assert out.shape == (3, 20, 30)
    assert [int(out[c].max()) for c in range(3)] == [2, 0, 1]


def test_matches_skimage():
    pytest.importorskip("skimage")
    from skimage.measure import label as sk_label
    from skimage.segmentation import relabel_sequential

    rng = np.random.default_rng(0)
    for ndim in (2, 3):
        mask = rng.random((9,) * ndim) < 0.45
        for connectivity in range(1, ndim + 1):
            ours = LabelInstances(connectivity=connectivity)(mask[None])[0]
            np.testing.assert_array_equal(ours, sk_label(mask, connectivity=connectivity))
        ids = rng.integers(0, 50, (9,) * ndim) * 3
        np.testing.assert_array_equal(LabelInstances(label_type="instance")(ids[None])[0], relabel_sequential(ids)[0])


@pytest.mark.parametrize(
    "case",
    ["small ids", "no background", "already consecutive", "large sparse ids", "all background", "one pixel", "uint16"],
)
def test_relabelling_matches_skimage(case):
    """The package's one relabelling (transforms.instances.relabel), both renumberings, against scikit-image."""
    pytest.importorskip("skimage")
    from skimage.segmentation import relabel_sequential as sk_relabel_sequential

    from monai_unet2015.metrics import relabel_sequential as metrics_relabel_sequential
    from monai_unet2015.transforms.instances.relabel import _relabel_consecutive, relabel_sequential

    rng = np.random.default_rng(1)
    labels = {
        "small ids": rng.integers(0, 40, (13, 17)) * 3,
        "no background": rng.integers(5, 60, (7, 6, 5)),
        "already consecutive": rng.permutation(np.arange(64)).reshape(8, 8) % 9,
        "large sparse ids": np.where(rng.random((20, 20)) < 0.3, rng.integers(1, 2**40, (20, 20)), 0),
        "all background": np.zeros((4, 5), np.int64),
        "one pixel": np.array([[7]]),
        "uint16": rng.integers(0, 65535, (30, 30)).astype(np.uint16),
    }[case]
    expected, forward, _ = sk_relabel_sequential(labels)
    ours, n = _relabel_consecutive(labels)
    assert ours.dtype == np.int32 and ours.shape == labels.shape
    np.testing.assert_array_equal(ours, expected)
    assert n == len(np.unique(labels[labels > 0]))
    # relabel_sequential: the rank among all distinct values, 0 included, and the table of values
    assert metrics_relabel_sequential is relabel_sequential  # one home, re-exported by the metrics
    dense, values = relabel_sequential(labels)
    np.testing.assert_array_equal(values, np.unique(labels))
    np.testing.assert_array_equal(values[dense], labels)
    shift = 0 if labels.min() == 0 else 1  # skimage keeps 0 for the background, the rank starts at 0
    np.testing.assert_array_equal(dense + shift, expected)
    assert dense.dtype == values.dtype == np.int64


# --------------------------------------------------------------------------------------------------
# types, metadata, dictionary version
# --------------------------------------------------------------------------------------------------


def test_types_and_metadata():
    mask = _two_discs()[None]
    expected = LabelInstances()(mask)
    assert isinstance(expected, np.ndarray) and expected.dtype == np.int32
    for dtype in (torch.uint8, torch.int64, torch.float32, torch.bool):
        out = LabelInstances()(torch.as_tensor(mask).to(dtype))
        assert type(out) is torch.Tensor and out.dtype == torch.int32
        np.testing.assert_array_equal(out.numpy(), expected)
    affine = torch.diag(torch.tensor([0.5, 2.0, 1.0, 1.0], dtype=torch.float64))
    meta = MetaTensor(torch.as_tensor(mask, dtype=torch.float32), affine=affine, meta={"filename_or_obj": "t.tif"})
    out = LabelInstances()(meta)
    assert isinstance(out, MetaTensor) and out.dtype == torch.int32
    assert out.meta["filename_or_obj"] == "t.tif"
    torch.testing.assert_close(out.affine, affine)
    np.testing.assert_array_equal(out.numpy(), expected)
    assert meta.dtype == torch.float32 and meta.meta["filename_or_obj"] == "t.tif"  # the input is unchanged


def test_dictionary_version_and_backend():
    assert LabelInstancesD is LabelInstancesd and LabelInstancesDict is LabelInstancesd
    assert LabelInstances.backend == LabelInstancesd.backend == [TransformBackends.NUMPY]
    mask = _two_discs()[None]
    d = LabelInstancesd(keys=("a", "b"), connectivity=1)({"a": mask, "b": torch.as_tensor(mask), "c": mask})
    np.testing.assert_array_equal(d["a"], LabelInstances(connectivity=1)(mask))
    np.testing.assert_array_equal(d["b"].numpy(), d["a"])
    assert d["c"] is mask
    assert LabelInstancesd(keys="missing", allow_missing_keys=True)({"a": mask}).keys() == {"a"}
    with pytest.raises(KeyError):
        LabelInstancesd(keys="missing")({"a": mask})


def test_home_and_re_exports():
    import monai_unet2015.transforms.instances as instances
    import monai_unet2015.transforms.weight_map as weight_map
    import monai_unet2015.transforms.weight_map.functional as weight_map_functional

    assert weight_map.label_instances is instances.label_instances is label_instances  # the old path still works
    assert weight_map_functional.label_instances is label_instances  # the weight map uses the same function
    assert instances.label_instances.__module__ == "monai_unet2015.transforms.instances.functional"


# --------------------------------------------------------------------------------------------------
# the bundles' former post-processing lambda
# --------------------------------------------------------------------------------------------------


@needs_dic
@pytest.mark.parametrize("connectivity", [1, 2])
def test_replaces_the_bundle_lambda_on_a_dic_hela_frame(connectivity):
    tifffile = pytest.importorskip("tifffile")
    frame = tifffile.imread(DIC_FRAME)
    mask = (frame > np.median(frame)).astype(np.float32)[None]  # (1, H, W), like AsDiscreted(argmax=True)
    affine = torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    pred = MetaTensor(torch.as_tensor(mask), affine=affine, meta={"filename_or_obj": str(DIC_FRAME)})
    expected = Lambdad(keys="pred", func=_bundle_lambda(connectivity))({"pred": pred})["pred"]
    out = LabelInstancesd(keys="pred", connectivity=connectivity)({"pred": pred})["pred"]
    assert isinstance(out, MetaTensor) and isinstance(expected, MetaTensor)
    assert out.shape == expected.shape == (1, 512, 512)
    assert out.dtype == expected.dtype == torch.int32
    assert torch.equal(out.as_tensor(), expected.as_tensor())
    assert int(out.max()) > 100  # many components: a real test of the numbering
    assert out.meta["filename_or_obj"] == expected.meta["filename_or_obj"] == str(DIC_FRAME)
    torch.testing.assert_close(out.affine, expected.affine)
    assert set(expected.meta) <= set(out.meta)


# --------------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------------


def test_bad_input():
    with pytest.raises(ValueError, match="label_type"):
        LabelInstances(label_type="semantic")
    with pytest.raises(ValueError, match="connectivity"):
        LabelInstances(connectivity=0)
    with pytest.raises(ValueError, match="connectivity"):
        LabelInstances(connectivity=True)
    with pytest.raises(ValueError, match="connectivity"):
        LabelInstances(connectivity=3)(np.zeros((1, 4, 4)))  # 2 spatial dimensions
    with pytest.raises(ValueError, match="channel-first"):
        LabelInstances()(np.zeros(4))
    with pytest.raises(ValueError, match="non-negative"):
        LabelInstances()(-np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="non-integer"):
        LabelInstances()(np.full((1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="empty"):
        LabelInstances()(np.zeros((1, 0, 4)))
    with pytest.raises(ValueError, match="label_type"):
        label_instances(np.zeros((4, 4)), label_type="semantic")

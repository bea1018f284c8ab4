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

"""Foreground IoU and the Cell Tracking Challenge SEG measure: hand-built cases, a direct per-object
computation on real DIC-HeLa gold/silver truth and on a 3D volume, MONAI's IoU and scikit-image's
contingency table as references."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

import monai_unet2015.metrics.ctc as ctc_module
from monai_unet2015.metrics import ForegroundIoUMetric, SEGMetric, foreground_iou, seg_measure
from monai_unet2015.metrics.contingency import contingency_table, relabel_sequential

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HELA = DATA / "dic-hela"
needs_hela = pytest.mark.skipif(not (HELA / "01_GT" / "SEG").is_dir(), reason=f"DIC-HeLa data not found at {HELA}")
SYNTH3D = DATA / "synthetic-3d" / "mask3d.tif"
needs_3d = pytest.mark.skipif(not SYNTH3D.is_file(), reason=f"synthetic 3D data not found at {SYNTH3D}")


def _slow_seg(pred: np.ndarray, ref: np.ndarray) -> tuple[list[int], list[float]]:
    """Direct definition: loop over reference objects, then over the predicted labels they touch."""
    labels, scores = [], []
    for r in np.unique(ref):
        if r == 0:
            continue
        rmask = ref == r
        best = 0.0
        for s in np.unique(pred[rmask]):
            if s == 0:
                continue
            smask = pred == s
            inter = np.logical_and(rmask, smask).sum()
            if inter > 0.5 * rmask.sum():
                best = inter / np.logical_or(rmask, smask).sum()
        labels.append(int(r))
        scores.append(float(best))
    return labels, scores


def test_docstring_examples():
    result = doctest.testmod(ctc_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# --------------------------------------------------------------------------------------------------
# Contingency table
# --------------------------------------------------------------------------------------------------


def test_contingency_table_matches_skimage_and_handles_large_labels():
    from skimage.metrics import contingency_table as sk_contingency_table

    rng = np.random.default_rng(0)
    a = rng.integers(0, 7, (20, 21))
    b = rng.integers(0, 5, (20, 21))
    ia, ib, n = contingency_table(a, b)
    ref = sk_contingency_table(a, b).toarray()
    dense = np.zeros_like(ref)
    dense[ia, ib] = n
    assert np.array_equal(dense, ref)
    # sparse path: huge, scattered label values
    big_a = a.astype(np.int64) * 10**12 + 3
    big_b = b.astype(np.int64) * 7919 + 10**9
    ja, jb, m = contingency_table(big_a, big_b)
    assert np.array_equal((ja - 3) // 10**12, ia) and np.array_equal((jb - 10**9) // 7919, ib) and np.array_equal(m, n)
    dense_labels, values = relabel_sequential(big_a)
    assert np.array_equal(values[dense_labels], big_a)


# --------------------------------------------------------------------------------------------------
# Foreground IoU
# --------------------------------------------------------------------------------------------------


def test_foreground_iou_hand_cases_and_monai_agreement():
    from monai.metrics import compute_iou

    y = np.zeros((2, 1, 6, 6), dtype=np.int64)
    y[0, 0, :3] = 4  # instance labels: non-zero is foreground
    y[1, 0, 2:5, 2:5] = 1
    pred = np.zeros_like(y)
    pred[0, 0, 1:4] = 9
    pred[1, 0, 2:5, 2:4] = 2
    iou = foreground_iou(pred, y)
    assert iou.tolist() == pytest.approx([12 / 24, 6 / 9])
    ref = compute_iou(torch.as_tensor(pred > 0).float(), torch.as_tensor(y > 0).float(), include_background=True)
    assert iou.tolist() == pytest.approx(ref[:, 0].tolist())
    # probability maps with a threshold
    prob = np.where(pred > 0, 0.7, 0.2)
    assert foreground_iou(prob, y, threshold=0.5).tolist() == pytest.approx(iou.tolist())
    # empty reference: nan (skipped) or, with ignore_empty=False, 1 for an empty prediction, 0 otherwise
    empty = np.zeros((4, 4), int)
    assert np.isnan(foreground_iou(empty, empty).item())
    assert foreground_iou(empty, empty, ignore_empty=False).item() == 1.0
    assert foreground_iou(empty + 1, empty, ignore_empty=False).item() == 0.0


def test_foreground_iou_metric_reduction():
    y = torch.zeros(3, 1, 4, 4)
    y[0, :, :2] = 1
    y[1, :, :, :1] = 1  # image 2 has no reference foreground: skipped
    pred = y.clone()
    pred[1, :, :, 1] = 1  # IoU 4 / 8
    metric = ForegroundIoUMetric(get_not_nans=True)
    metric(y_pred=pred[:2], y=y[:2])
    metric(y_pred=[pred[2]], y=[y[2]])
    value, not_nans = metric.aggregate()
    assert value.item() == pytest.approx(0.75) and not_nans.item() == 2
    per_image, _ = metric.aggregate(reduction="none")
    assert per_image[:2, 0].tolist() == [1.0, 0.5] and torch.isnan(per_image[2, 0])
    with pytest.raises(ValueError, match="threshold"):
        ForegroundIoUMetric(threshold=2.0)


# --------------------------------------------------------------------------------------------------
# SEG
# --------------------------------------------------------------------------------------------------


def test_seg_hand_cases():
    ref = np.zeros((6, 12), dtype=np.int64)
    ref[1:5, 1:5] = 3  # 16 px
    ref[1:5, 6:8] = 7  # 8 px
    ref[1:5, 9:11] = 8  # 8 px
    pred = np.zeros_like(ref)
    pred[1:5, 1:4] = 1  # covers 12/16 of object 3: J = 12 / 16
    pred[1:3, 6:8] = 2  # exactly half of object 7: no match (needs more than half)
    pred[1:5, 6:11] = np.where(pred[1:5, 6:11] == 2, 2, 5)  # object 5 (16 px) covers all of 8: J = 8 / 16
    r = seg_measure(pred, ref)
    assert r.labels.tolist() == [[0, 3], [0, 7], [0, 8]]
    assert r.jaccard.tolist() == pytest.approx([12 / 16, 0.0, 8 / 16])
    assert r.seg == pytest.approx((12 / 16 + 8 / 16) / 3)
    assert _slow_seg(pred, ref)[1] == pytest.approx(r.jaccard.tolist())
    # a perfect prediction with other label values scores 1; an empty one 0
    assert seg_measure(ref * 5 + 1 - (ref == 0), ref).seg == 1.0
    assert seg_measure(np.zeros_like(ref), ref).seg == 0.0
    assert np.isnan(seg_measure(ref, np.zeros_like(ref)).seg)  # no reference objects


def test_seg_merged_prediction_matches_both_references():
    ref = np.zeros((4, 9), dtype=np.int64)
    ref[:, :4] = 1
    ref[:, 5:] = 2
    merged = np.ones_like(ref)  # one predicted object covering both
    r = seg_measure(merged, ref)
    assert r.jaccard.tolist() == pytest.approx([16 / 36, 16 / 36])


@needs_hela
def test_seg_on_dic_hela_gold_versus_silver_truth():
    import tifffile

    frames = sorted((HELA / "01_GT" / "SEG").glob("man_seg*.tif"))[:4]
    assert frames
    refs, preds = [], []
    for f in frames:
        refs.append(tifffile.imread(f))
        preds.append(tifffile.imread(HELA / "01_ST" / "SEG" / f.name))
        r = seg_measure(preds[-1], refs[-1])
        labels, scores = _slow_seg(preds[-1], refs[-1])
        assert r.labels[:, 1].tolist() == labels
        assert r.jaccard == pytest.approx(scores, abs=1e-12)
        assert 0.5 < r.seg <= 1.0  # silver truth is a good segmentation
        # against itself, and with scrambled label values, SEG is 1
        perm = np.random.default_rng(0).permutation(int(refs[-1].max()) + 1) + 100
        perm[0] = 0
        assert seg_measure(perm[refs[-1]], refs[-1]).seg == 1.0
    # the metric class pools over all reference objects of all frames
    metric = SEGMetric()
    batch_p = torch.as_tensor(np.stack(preds).astype(np.int32))[:, None]
    batch_r = torch.as_tensor(np.stack(refs).astype(np.int32))[:, None]
    metric(y_pred=batch_p[:2], y=batch_r[:2])
    metric(y_pred=batch_p[2:], y=batch_r[2:])
    all_scores = np.concatenate([_slow_seg(p, r)[1] for p, r in zip(preds, refs)])
    assert metric.aggregate().item() == pytest.approx(all_scores.mean(), abs=1e-12)
    assert seg_measure(batch_p, batch_r).seg == pytest.approx(all_scores.mean(), abs=1e-12)
    per_image = SEGMetric(average="images")
    per_image(y_pred=batch_p, y=batch_r)
    expected = np.mean([np.mean(_slow_seg(p, r)[1]) for p, r in zip(preds, refs)])
    assert per_image.aggregate().item() == pytest.approx(expected, abs=1e-12)


@needs_3d
def test_seg_and_iou_in_3d():
    import tifffile

    ref = tifffile.imread(SYNTH3D).astype(np.int64)
    # a plausible prediction: every object eroded by one voxel, one object removed, labels renumbered
    pred = np.where(ndi.grey_erosion(ref, size=(3, 3, 3)) == ref, ref, 0) * 3
    pred[pred == 3 * ref.max()] = 0
    r = seg_measure(pred[None, None], ref[None, None])
    labels, scores = _slow_seg(pred, ref)
    assert r.labels[:, 1].tolist() == labels and r.jaccard == pytest.approx(scores, abs=1e-12)
    inter = np.logical_and(pred > 0, ref > 0).sum()
    union = np.logical_or(pred > 0, ref > 0).sum()
    assert foreground_iou(pred[None, None], ref[None, None]).item() == pytest.approx(inter / union)


def test_bad_input_errors():
    ref = np.zeros((5, 5), dtype=np.int64)
    ref[1:3, 1:3] = 1
    with pytest.raises(ValueError, match="same shape"):
        seg_measure(ref, ref[:, :-1])
    with pytest.raises(ValueError, match="non-integer"):
        seg_measure(ref * 0.5, ref)  # a probability map is not an instance label map
    with pytest.raises(ValueError, match="non-negative"):
        seg_measure(ref - 1, ref)
    with pytest.raises(TypeError, match="label map"):
        seg_measure(ref.astype(complex), ref)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        foreground_iou(ref * 3.0, ref, threshold=0.5)
    with pytest.raises(ValueError, match="non-integer"):
        foreground_iou(ref * 0.3, ref)
    with pytest.raises(ValueError, match="average"):
        SEGMetric(average="frames")
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        SEGMetric()(y_pred=torch.as_tensor(ref), y=torch.as_tensor(ref))
    with pytest.raises(ValueError, match="nothing to aggregate"):
        SEGMetric().aggregate()
    # float label maps holding integers are fine (MONAI often loads labels as float)
    assert seg_measure(ref.astype(np.float32), ref).seg == 1.0

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

"""Data shared by the metric tests: ISBI 2012 membranes from ../shared/data, noisy probabilities, random blobs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ISBI_LABELS = DATA / "isbi2012" / "train" / "label"
needs_isbi = pytest.mark.skipif(not ISBI_LABELS.is_dir(), reason=f"ISBI 2012 data not found at {ISBI_LABELS}")


def isbi_membrane(index: int) -> np.ndarray:
    from PIL import Image

    label = np.array(Image.open(ISBI_LABELS / f"{index:02d}.png"))
    return (label == 0).astype(np.float64)  # 1 = membrane


def noisy_probability(membrane: np.ndarray, seed: int = 0, noise: float = 0.6, sigma: float = 1.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = ndi.gaussian_filter(membrane + noise * rng.standard_normal(membrane.shape), sigma)
    return (p - p.min()) / (p.max() - p.min())


def random_blobs(shape, seed, sigma=2.0, level=0.0):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.standard_normal(shape), sigma) > level

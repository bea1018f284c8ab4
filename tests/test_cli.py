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
import tifffile
import torch
from PIL import Image

from monai_unet2015.__main__ import SAMPLE, main
from monai_unet2015.networks.nets import UNet2015


def test_segment_cli_matches_whole_image_pass(tmp_path):
    torch.manual_seed(0)
    net = UNet2015(features=(4, 8, 16), dropout=0.0).eval()
    weights = tmp_path / "model.pt"
    torch.save(net.state_dict(), weights)
    img = np.asarray(Image.open(SAMPLE))[:61, :83]
    src = tmp_path / "crop.png"
    Image.fromarray(img).save(src)

    rc = main(["segment", "--input", str(src), "--output", str(tmp_path / "out"), "--weights", str(weights),
               "--features", "4,8,16", "--roi-size", "24", "--device", "cpu"])
    assert rc == 0
    prob = tifffile.imread(tmp_path / "out" / "crop_prob.tif")
    mask = np.asarray(Image.open(tmp_path / "out" / "crop_mask.png"))
    overlay = np.asarray(Image.open(tmp_path / "out" / "crop_overlay.png"))
    assert prob.shape == mask.shape == (61, 83) and overlay.shape == (61, 83, 3)

    # reference: one pass over the whole image mirrored by the border, padded to a valid size on the far side
    x = img.astype(np.float32)
    x = (x - x.mean()) / x.std()
    b = net.border
    th, tw = net.input_size_for_output((61, 83))
    padded = np.pad(x, ((b, th - 61 - b), (b, tw - 83 - b)), mode="reflect")
    with torch.no_grad():
        ref = torch.softmax(net(torch.from_numpy(padded)[None, None]), 1)[0, 1, :61, :83].numpy()
    np.testing.assert_allclose(prob, ref, atol=1e-5)
    np.testing.assert_array_equal(mask, (ref > 0.5) * 255)


def test_segment_cli_default_input_is_the_shipped_sample():
    assert SAMPLE.is_file()
    assert np.asarray(Image.open(SAMPLE)).shape == (512, 512)

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

"""The lazy dask-array path against OverlapTileInferer on the whole in-memory image (the reference)."""

from __future__ import annotations

import functools
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

da = pytest.importorskip("dask.array")

from monai_unet2015.inferers import DihedralTTAInferer, OverlapTileInferer, ValidPaddingGeometry  # noqa: E402
from monai_unet2015.inferers.out_of_core import (  # noqa: E402
    NetworkLoader,
    chunk_layout,
    default_axes,
    networks_built,
    output_axes,
    overlap_tile_dask,
)
from monai_unet2015.networks.nets import UNet2015  # noqa: E402


def _net(spatial_dims: int = 2, features=(4, 8, 16), in_channels: int = 1) -> UNet2015:
    torch.manual_seed(0)
    return UNet2015(spatial_dims=spatial_dims, in_channels=in_channels, features=features, dropout=0.0).eval()


def _random(shape, chunks, seed=0, dtype=np.float32):
    return da.from_array(np.random.default_rng(seed).random(shape).astype(dtype), chunks=chunks)


def _reference(image: np.ndarray, net, roi_size) -> np.ndarray:
    """(N, C, *spatial) in, (N, K, *spatial) out: the in-memory overlap-tile inferer on the whole image."""
    return OverlapTileInferer(roi_size=roi_size)(torch.from_numpy(image.astype(np.float32)), net).numpy()


@pytest.mark.parametrize(
    "shape,chunks,chunk_size",
    [
        ((300, 257), (300, 257), 64),  # one input block, many output chunks
        ((300, 257), (37, 91), 96),  # input blocks smaller than and misaligned with the output chunks
        ((300, 257), (1, 257), 64),  # one row per input block
        ((300, 257), (300, 257), 1000),  # one output chunk
        ((10, 13), (10, 13), 64),  # smaller than the border: repeated reflection
        ((130, 70), (64, 35), 16),  # chunks of one grid step... of the network's step 4
    ],
)
def test_2d_image_equals_whole_image_inference(shape, chunks, chunk_size):
    net = _net()
    image = _random(shape, chunks)
    out = overlap_tile_dask(image, net, OverlapTileInferer(roi_size=48), axes="yx", chunk_size=chunk_size)
    assert out.shape == (2, *shape)
    ref = _reference(image.compute()[None, None], net, 48)[0]
    np.testing.assert_allclose(out.compute(), ref, atol=1e-5, rtol=0)


def test_2d_stack_is_segmented_slice_by_slice():
    net = _net()
    image = _random((4, 150, 97), (3, 50, 50), seed=1)
    out = overlap_tile_dask(image, net, OverlapTileInferer(roi_size=64), chunk_size=64)  # default axes: zyx
    assert out.shape == (2, 4, 150, 97) and out.chunksize == (2, 1, 64, 64)
    ref = _reference(image.compute()[:, None], net, 64)  # (Z, K, Y, X)
    np.testing.assert_allclose(out.compute(), ref.transpose(1, 0, 2, 3), atol=1e-5, rtol=0)


def test_time_and_channel_axes_ome_order():
    net = _net(in_channels=2)
    image = _random((2, 2, 3, 60, 50), (1, 2, 1, 30, 50), seed=2)  # t c z y x, 2D network
    out = overlap_tile_dask(image, net, OverlapTileInferer(roi_size=32), axes="tczyx", chunk_size=32)
    assert out.shape == (2, 2, 3, 60, 50)  # t c z y x with c the classes
    arr = image.compute()
    flat = arr.transpose(0, 2, 1, 3, 4).reshape(6, 2, 60, 50)  # (t z) c y x
    ref = _reference(flat, net, 32).reshape(2, 3, 2, 60, 50).transpose(0, 2, 1, 3, 4)
    np.testing.assert_allclose(out.compute(), ref, atol=1e-5, rtol=0)


def test_3d_volume_with_3d_network():
    net = _net(spatial_dims=3, features=(2, 4, 8))
    image = _random((40, 45, 37), (13, 20, 37), seed=3)
    out = overlap_tile_dask(image, net, OverlapTileInferer(roi_size=16), axes="zyx", chunk_size=(16, 24, 20))
    assert out.shape == (2, 40, 45, 37)
    ref = _reference(image.compute()[None, None], net, 16)[0]
    np.testing.assert_allclose(out.compute(), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("group", ["dihedral", "flips", "rot90"])
def test_dihedral_tta_equals_the_tta_inferer_on_the_whole_image(group):
    net = _net()
    image = _random((150, 97), (40, 60), seed=5)
    tta = DihedralTTAInferer(OverlapTileInferer(roi_size=48), group=group, postprocess=lambda y: torch.softmax(y, 1))
    out = overlap_tile_dask(image, net, tta, axes="yx", chunk_size=36)  # non-square image and chunks
    ref = tta(torch.from_numpy(image.compute())[None, None], net)[0].numpy()
    np.testing.assert_allclose(out.compute(), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("on_gpu", [False, True])
def test_gpu_only_tta_is_decided_where_the_network_runs(on_gpu, monkeypatch):
    """``gpu_only``: each chunk's process averages the group when its network is on a GPU (simulated here by
    the device test that ``_predict_chunk`` asks), else makes one pass: the plain tiles' result."""
    import monai_unet2015.inferers.tta as tta_module

    monkeypatch.setattr(tta_module, "_runs_on_gpu", lambda inputs, network: on_gpu)
    net = _net()
    image = _random((150, 97), (40, 60), seed=7)
    tiles = OverlapTileInferer(roi_size=48)
    out = overlap_tile_dask(image, net, DihedralTTAInferer(tiles, gpu_only=True), axes="yx", chunk_size=36)
    whole = torch.from_numpy(image.compute())[None, None]
    ref = (DihedralTTAInferer(tiles) if on_gpu else tiles)(whole, net)[0].numpy()
    np.testing.assert_allclose(out.compute(), ref, atol=1e-5, rtol=0)


def test_dihedral_tta_of_a_3d_volume_in_another_plane():
    net = _net(spatial_dims=3, features=(2, 4, 8))
    image = _random((30, 41, 27), (30, 20, 27), seed=6)
    tta = DihedralTTAInferer(OverlapTileInferer(roi_size=16), group="dihedral", spatial_axes=(1, 2))
    out = overlap_tile_dask(image, net, tta, axes="zyx", chunk_size=(12, 16, 20))
    ref = tta(torch.from_numpy(image.compute())[None, None], net)[0].numpy()
    np.testing.assert_allclose(out.compute(), ref, atol=1e-5, rtol=0)


def test_lazy_probabilities_and_instances_per_whole_slice():
    from monai_unet2015.inferers.out_of_core import instances_dask
    from monai_unet2015.transforms.instances.watershed import WatershedInstances

    net = _net()
    image = _random((2, 64, 80), (1, 32, 80), seed=7)
    step = WatershedInstances(mask_threshold=0.5, marker_threshold=0.55, min_marker_size=2)
    prob = overlap_tile_dask(image, net, OverlapTileInferer(roi_size=48), axes="zyx", chunk_size=128, softmax=True)
    ref = torch.softmax(torch.from_numpy(_reference(image.compute()[:, None], net, 48)), 1).numpy()  # (Z, K, Y, X)
    np.testing.assert_allclose(prob.compute(), ref.transpose(1, 0, 2, 3), atol=1e-6, rtol=0)
    labels = instances_dask(prob, step, axes="czyx").compute()
    for z in range(2):
        np.testing.assert_array_equal(labels[z], np.asarray(step(torch.from_numpy(ref[z, 1:2])))[0])
    split = overlap_tile_dask(image, net, OverlapTileInferer(roi_size=48), axes="zyx", chunk_size=32, softmax=True)
    with pytest.raises(ValueError, match="whole images"):
        instances_dask(split, step, axes="czyx")


def test_integer_input_and_plain_function_network():
    box = lambda t: torch.nn.functional.avg_pool2d(t, 5, 1)  # noqa: E731  (2 px lost per side, no pooling)
    image = da.from_array(np.random.default_rng(4).integers(0, 255, (70, 90), dtype=np.uint8), chunks=(25, 25))
    inferer = OverlapTileInferer(roi_size=20, geometry=ValidPaddingGeometry(border=2))
    out = overlap_tile_dask(image, box, inferer, axes="yx", chunk_size=30, out_channels=1)
    ref = inferer(torch.from_numpy(image.compute().astype(np.float32))[None, None], box)[0].numpy()
    np.testing.assert_allclose(out.compute(), ref, atol=1e-4, rtol=0)


def test_chunk_layout_and_axes_helpers():
    from monai_unet2015.inferers import UNet2015Geometry

    layout = chunk_layout((1000, 300), UNet2015Geometry(5), 500)
    assert layout.chunks == ((512, 488), (300,)) and layout.starts == ((0, 512), (0,)) and layout.num_chunks == 2
    assert all(s % 16 == 0 for s in layout.starts[0])
    assert default_axes(2, 2) == "yx" and default_axes(3, 2) == "zyx" and default_axes(3, 3) == "zyx"
    assert output_axes("tzyx", 2) == "tczyx" and output_axes("czyx", 3) == "czyx"
    with pytest.raises(ValueError, match="axes="):
        default_axes(4, 2)


def test_network_loader_builds_once_per_process_and_loads_checkpoint(tmp_path):
    net = _net()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.5)
    path = tmp_path / "model.pt"
    torch.save(net.state_dict(), path)
    loader = NetworkLoader(functools.partial(UNet2015, features=(4, 8, 16), dropout=0.0), checkpoint=path, device="cpu")
    before = networks_built()
    first = loader.get()
    assert loader.get() is first and pickle.loads(pickle.dumps(loader)).get() is first
    assert networks_built() == before + 1
    for a, b in zip(first.state_dict().values(), net.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert not first.training
    assert "first" not in pickle.dumps(loader).decode("latin1")  # the built copy does not travel


@pytest.mark.parametrize(
    "make,kwargs,error,match",
    [
        (lambda: np.zeros((64, 64), np.float32), {}, TypeError, "dask array"),
        (lambda: da.zeros((64, 64), dtype=np.complex64), {}, TypeError, "complex64 is not supported"),
        (lambda: da.zeros((2, 3, 64, 64)), {}, ValueError, "pass axes="),
        (lambda: da.zeros((3, 64, 64)), {"axes": "cyx"}, ValueError, "takes 1 input channel"),
        (lambda: da.zeros((3, 64, 64)), {"axes": "zxc"}, ValueError, "must be spatial"),
        (lambda: da.zeros((3, 64, 64)), {"axes": "zy"}, ValueError, "each of the array's 3 axes"),
        (lambda: da.zeros((3, 64, 64)), {"axes": "qyx"}, ValueError, "may only use the letters"),
        (lambda: da.zeros((64, 64)), {"chunk_size": 0}, ValueError, "chunk_size must be positive"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(make, kwargs, error, match):
    with pytest.raises(error, match=match):
        overlap_tile_dask(make(), _net(), **kwargs)


def test_the_package_imports_without_dask_and_zarr():
    code = (
        "import sys; sys.modules.update({m: None for m in ('dask', 'dask.array', 'zarr', 'distributed')});"
        "import monai_unet2015, monai_unet2015.inferers as i, monai_unet2015.data.zarr_io;"
        "from monai_unet2015.inferers import overlap_tile_dask\n"
        "try:\n    i.overlap_tile_dask(None, None)\nexcept ImportError as e:\n    print('ImportError', e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'monai-unet2015[large]'" in out.stdout

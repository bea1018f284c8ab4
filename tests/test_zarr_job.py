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

"""The restartable OME-Zarr job on a 2-worker dask.distributed LocalCluster bound to 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

zarr = pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")
tifffile = pytest.importorskip("tifffile")

from monai_unet2015.data.zarr_io import open_lazy  # noqa: E402
from monai_unet2015.inferers import DihedralTTAInferer, OverlapTileInferer  # noqa: E402
from monai_unet2015.inferers.out_of_core import NetworkLoader, networks_built  # noqa: E402
from monai_unet2015.inferers.zarr_job import PROGRESS_ARRAY, segment_to_zarr, start_client  # noqa: E402
from monai_unet2015.networks.nets import UNet2015  # noqa: E402
from monai_unet2015.transforms.instances.watershed import WatershedInstances  # noqa: E402

ROI = 48


def _net() -> UNet2015:
    torch.manual_seed(0)
    return UNet2015(features=(4, 8, 16), dropout=0.0).eval()


def _stack(shape=(3, 130, 110), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 200 + 20).astype(np.uint8)


def _write_zarr(path: Path, arr: np.ndarray, chunks) -> Path:
    z = zarr.create_array(str(path), shape=arr.shape, chunks=chunks, dtype=arr.dtype)
    z[...] = arr
    return path


def _reference(stack: np.ndarray, net) -> np.ndarray:
    """Softmax probabilities (K, Z, Y, X) of each slice rescaled to [0, 1], as the bundles' in-memory inference."""
    out = []
    for sl in torch.from_numpy(stack.astype(np.float32)):
        sl = (sl - sl.min()) / (sl.max() - sl.min())
        out.append(torch.softmax(OverlapTileInferer(roi_size=ROI)(sl[None, None], net), 1)[0])
    return torch.stack(out, 1).numpy()


@pytest.fixture(scope="module")
def client():
    c, close = start_client(None, n_workers=2, threads_per_worker=1, memory_limit="1GiB")
    yield c
    close()


def _tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_job_equals_in_memory_inference_and_builds_the_network_once_per_worker(tmp_path, client):
    stack = _stack()
    src = _write_zarr(tmp_path / "in.zarr", stack, (1, 50, 64))
    net = _net()
    loader = NetworkLoader(net)
    summary = segment_to_zarr(
        src, tmp_path / "out.zarr", loader, OverlapTileInferer(roi_size=ROI), chunk_size=32, threshold=0.5,
        scheduler=client, progress=False, name="test", attributes={"bundle": "test", "version": "1.0"},
    )
    assert summary.chunks == 3 * 5 * 4 and summary.done == summary.chunks and summary.skipped == 0
    assert "Segmented 60 of 60 chunks (0 already complete)" in str(summary)
    out = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    ref = _reference(stack, net)
    np.testing.assert_allclose(out["0"][...], ref, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(out["labels/mask/0"][...], (ref[1] >= 0.5).astype(np.uint8))  # as AsDiscrete
    assert out["0"].chunks == (2, 1, 32, 32) and out[PROGRESS_ARRAY][...].all()
    ome = out.attrs["ome"]
    assert [a["name"] for a in ome["multiscales"][0]["axes"]] == ["c", "z", "y", "x"]
    assert ome["multiscales"][0]["name"] == "test" and out.attrs["unet2015"]["version"] == "1.0"
    assert out["labels"].attrs["ome"]["labels"] == ["mask"]
    built = client.run(networks_built)
    assert len(built) == 2 and all(n <= 1 for n in built.values()) and sum(built.values()) >= 1  # not once per chunk


def test_ome_zarr_input_keeps_its_voxel_size_and_tiff_input_gives_the_same_result(tmp_path, client):
    from monai_unet2015.data.zarr_io import OutputArray, create_ome_zarr

    stack = _stack((2, 70, 90), seed=1)
    group = create_ome_zarr(
        tmp_path / "in_ome.zarr", OutputArray("0", "zyx", stack.shape, (1, 35, 45), "uint8"),
        spacing={"z": 0.05, "y": 0.004, "x": 0.004}, unit="micrometer",
    )
    group["0"][...] = stack
    tifffile.imwrite(tmp_path / "in.tif", stack, tile=(32, 32), bigtiff=True)
    image = open_lazy(tmp_path / "in.tif")
    assert image.axes == "zyx" and image.data.chunksize[-2:] == (32, 32)
    loader = NetworkLoader(_net())
    results = []
    (tmp_path / "slices").mkdir()
    for z, sl in enumerate(stack):  # a folder of 2D slices, one file each, in name order
        tifffile.imwrite(tmp_path / "slices" / f"s{z:03d}.tif", sl)
    assert open_lazy(tmp_path / "slices").format == "folder"
    # the second job reaches the running cluster by its scheduler's address, as a user's existing cluster
    jobs = (("in_ome.zarr", client), ("in.tif", client.scheduler.address), ("slices", client))
    for name, scheduler in jobs:
        out = tmp_path / f"out_{name}.zarr"
        segment_to_zarr(tmp_path / name, out, loader, OverlapTileInferer(roi_size=ROI), chunk_size=48,
                        probability_dtype="float16", channels=[1], scheduler=scheduler, progress=False)
        results.append(zarr.open_group(str(out), mode="r"))
    ome = results[0].attrs["ome"]["multiscales"][0]
    assert ome["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 0.05, 0.004, 0.004]
    assert ome["axes"][2] == {"name": "y", "type": "space", "unit": "micrometer"}
    assert results[0]["0"].dtype == np.float16 and results[0]["0"].shape == (1, 2, 70, 90)
    np.testing.assert_array_equal(results[0]["0"][...], results[1]["0"][...])
    np.testing.assert_array_equal(results[0]["0"][...], results[2]["0"][...])
    np.testing.assert_allclose(results[0]["0"][...].astype(np.float32), _reference(stack, loader.get())[1:], atol=1e-3)


def test_instances_per_whole_slice_and_refused_across_chunks(tmp_path, client):
    stack = _stack((2, 64, 80), seed=2)
    src = _write_zarr(tmp_path / "in.zarr", stack, (1, 64, 80))
    net = _net()
    watershed = WatershedInstances(mask_threshold=0.5, marker_threshold=0.55, min_marker_size=2)
    with pytest.raises(ValueError, match="whole images"):
        segment_to_zarr(src, tmp_path / "bad.zarr", NetworkLoader(net), OverlapTileInferer(roi_size=ROI),
                        chunk_size=32, instances=watershed, scheduler=client)
    assert not (tmp_path / "bad.zarr").exists()
    segment_to_zarr(src, tmp_path / "out.zarr", NetworkLoader(net), OverlapTileInferer(roi_size=ROI), chunk_size=128,
                    instances=watershed, scheduler=client, progress=False)
    labels = zarr.open_array(str(tmp_path / "out.zarr" / "labels/instances/0"), mode="r")[...]
    ref = _reference(stack, net)
    for z in range(2):
        expected = np.asarray(watershed(torch.from_numpy(ref[1:2, z])))[0]
        np.testing.assert_array_equal(labels[z], expected)
    assert labels.max() > 0
    again = WatershedInstances(mask_threshold=0.5, marker_threshold=0.55, min_marker_size=2)  # an equal new object
    summary = segment_to_zarr(src, tmp_path / "out.zarr", NetworkLoader(net), OverlapTileInferer(roi_size=ROI),
                              chunk_size=128, instances=again, scheduler=client, progress=False)
    assert summary.skipped == summary.chunks == 2 and summary.done == 0


def test_tta_job_equals_the_tta_inferer(tmp_path, client):
    stack = _stack((2, 70, 50), seed=5)
    src = _write_zarr(tmp_path / "in.zarr", stack, (1, 70, 50))
    net = _net()
    tta = DihedralTTAInferer(OverlapTileInferer(roi_size=ROI))
    segment_to_zarr(src, tmp_path / "out.zarr", NetworkLoader(net), tta, chunk_size=32, scheduler=client,
                    progress=False)
    out = zarr.open_array(str(tmp_path / "out.zarr" / "0"), mode="r")[...]
    for z, sl in enumerate(torch.from_numpy(stack.astype(np.float32))):
        sl = (sl - sl.min()) / (sl.max() - sl.min())
        ref = torch.softmax(tta(sl[None, None], net), 1)[0].numpy()
        np.testing.assert_allclose(out[:, z], ref, atol=1e-5, rtol=0)


def test_killed_worker_is_replaced_and_the_result_is_unchanged(tmp_path, client):
    stack = _stack((4, 160, 160), seed=3)
    src = _write_zarr(tmp_path / "in.zarr", stack, (1, 160, 160))
    net = _net()
    inferer = OverlapTileInferer(roi_size=16)  # many small tiles: a slower job
    segment_to_zarr(src, tmp_path / "ref.zarr", NetworkLoader(net), inferer, chunk_size=16, scheduler=client,
                    progress=False)
    progress = tmp_path / "out.zarr" / PROGRESS_ARRAY
    pids = client.run(os.getpid)
    killed = []

    def kill_one_worker() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            try:
                if zarr.open_array(str(progress), mode="r")[...].sum() >= 40:
                    os.kill(next(iter(pids.values())), signal.SIGKILL)
                    killed.append(True)
            except Exception:
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_one_worker)
    watcher.start()
    summary = segment_to_zarr(src, tmp_path / "out.zarr", NetworkLoader(net), inferer, chunk_size=16,
                              scheduler=client, progress=False)
    watcher.join()
    assert killed and summary.done == summary.chunks == 4 * 10 * 10
    a = zarr.open_array(str(tmp_path / "out.zarr" / "0"), mode="r")[...]
    np.testing.assert_array_equal(a, zarr.open_array(str(tmp_path / "ref.zarr" / "0"), mode="r")[...])


_JOB = """
import sys
import torch
from monai_unet2015.inferers import OverlapTileInferer
from monai_unet2015.inferers.out_of_core import NetworkLoader
from monai_unet2015.inferers.zarr_job import segment_to_zarr
from monai_unet2015.networks.nets import UNet2015

if __name__ == "__main__":
    torch.manual_seed(0)
    net = UNet2015(features=(4, 8, 16), dropout=0.0).eval()
    print(segment_to_zarr(sys.argv[1], sys.argv[2], NetworkLoader(net), OverlapTileInferer(roi_size=16),
                          chunk_size=16, threshold=0.5, n_workers=2, memory_limit="1GiB", progress=False), flush=True)
"""


def test_killed_job_resumes_and_gives_the_uninterrupted_result(tmp_path):
    stack = _stack((4, 160, 160), seed=4)
    src = _write_zarr(tmp_path / "in.zarr", stack, (1, 80, 80))
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(_JOB))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def run(out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), str(src), str(out)], capture_output=True, text=True,
                              timeout=300, env=env)

    ref = run(tmp_path / "ref.zarr")
    assert ref.returncode == 0, ref.stderr[-2000:]
    job = subprocess.Popen([sys.executable, str(script), str(src), str(tmp_path / "out.zarr")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    progress = tmp_path / "out.zarr" / PROGRESS_ARRAY
    deadline, done = time.time() + 240, 0
    while time.time() < deadline and job.poll() is None:
        try:
            done = int(zarr.open_array(str(progress), mode="r")[...].sum())
        except Exception:
            done = 0
        if done >= 60:
            break
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)  # the client and its local cluster, mid-run
    job.wait(timeout=60)
    assert 60 <= done < 400, f"the job was not killed mid-run ({done} chunks done)"
    rerun = run(tmp_path / "out.zarr")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    line = rerun.stdout.strip().splitlines()[-1]
    skipped = int(line.split("(")[1].split()[0])
    assert skipped >= 60 and "of 400 chunks" in line, line
    for name in ("0", "labels/mask/0"):
        a = zarr.open_array(str(tmp_path / "out.zarr" / name), mode="r")[...]
        b = zarr.open_array(str(tmp_path / "ref.zarr" / name), mode="r")[...]
        np.testing.assert_array_equal(a, b)


def test_bad_input_fails_before_any_work_and_overwrites_nothing(tmp_path):
    net = _net()
    loader = NetworkLoader(net)
    good = _write_zarr(tmp_path / "in.zarr", _stack((2, 40, 40)), (1, 40, 40))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    _write_zarr(tmp_path / "complex.zarr", np.zeros((4, 4), np.complex64), (4, 4))
    _write_zarr(tmp_path / "four_d.zarr", np.zeros((2, 2, 8, 8), np.uint8), (1, 1, 8, 8))
    group = zarr.open_group(str(tmp_path / "group.zarr"), mode="w")
    group.create_array("raw", shape=(8, 8), dtype="uint8")
    other = _write_zarr(tmp_path / "other.zarr", np.ones((5, 5), np.uint8), (5, 5))
    cases = [
        (tmp_path / "missing.zarr", tmp_path / "o1.zarr", FileNotFoundError, "input_path .*does not exist"),
        (tmp_path / "notes", tmp_path / "o2.zarr", ValueError, "not a zarr array, an OME-Zarr image, a TIFF"),
        (tmp_path / "image.png", tmp_path / "o3.zarr", ValueError, "not a zarr array, an OME-Zarr image, a TIFF"),
        (tmp_path / "group.zarr", tmp_path / "o4.zarr", ValueError, r"holds the arrays \['raw'\]"),
        (tmp_path / "complex.zarr", tmp_path / "o5.zarr", TypeError, "complex64 are not supported"),
        (tmp_path / "four_d.zarr", tmp_path / "o6.zarr", ValueError, "pass axes="),
        (good, other, ValueError, "not the output of a monai_unet2015 job; nothing was written"),
    ]
    before = _tree_digest(other)
    for src, out, error, match in cases:
        with pytest.raises(error, match=match):
            segment_to_zarr(src, out, loader, OverlapTileInferer(roi_size=ROI), n_workers=1)
        if out != other:
            assert not out.exists()
    assert _tree_digest(other) == before
    # the output of another job (another threshold) is refused too, and left as it was
    segment_to_zarr(good, tmp_path / "done.zarr", loader, OverlapTileInferer(roi_size=ROI), threshold=0.5,
                    n_workers=1, progress=False)
    before = _tree_digest(tmp_path / "done.zarr")
    with pytest.raises(ValueError, match="another job, differing in threshold"):
        segment_to_zarr(good, tmp_path / "done.zarr", loader, OverlapTileInferer(roi_size=ROI), threshold=0.6,
                        n_workers=1)
    assert _tree_digest(tmp_path / "done.zarr") == before

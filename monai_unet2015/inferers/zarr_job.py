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

"""
A restartable out-of-core segmentation job: an image on disk (zarr, OME-Zarr, TIFF) segmented chunk by chunk
with :py:mod:`~monai_unet2015.inferers.out_of_core` on a ``dask.distributed`` cluster and written to an OME-Zarr
output, chunk by chunk.

Each task computes one output chunk, writes it (probabilities, and the mask and instances on request) into
whole zarr chunks, and only then marks it done in the output's ``unet2015_progress`` array. A job that is
killed (a worker or the client) and run again with the same output skips the chunks marked done and
recomputes the others, so a chunk is never left half-written and counted as done. An output path that holds
anything else, or the output of another job (other input, network or options), is refused before any work.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from monai.utils import optional_import

from monai_unet2015.data.zarr_io import OutputArray, create_ome_zarr, open_lazy
from monai_unet2015.inferers.out_of_core import (
    NetworkLoader,
    _graph,
    _plan_graph,
    _Plan,
    _predict_chunk,
    _require_dask,
)
from monai_unet2015.inferers.overlap_tile import OverlapTileInferer
from monai_unet2015.inferers.tta import DihedralTTAInferer

zarr, _ = optional_import("zarr")
tqdm, has_tqdm = optional_import("tqdm", name="tqdm")

__all__ = ["JobSummary", "segment_to_zarr", "PROGRESS_ARRAY", "start_client"]

logger = logging.getLogger(__name__)

#: the array of the output group that records which chunks are complete (1) and which are not (0)
PROGRESS_ARRAY = "unet2015_progress"
_NORMALIZE = ("minmax", "standardize", "none")
_ARRAYS: dict[tuple[str, str], Any] = {}


class JobSummary(NamedTuple):
    """What :py:func:`segment_to_zarr` did.

    Attributes:
        output_path: the OME-Zarr output.
        chunks: number of chunks of the whole job.
        done: chunks computed by this run.
        skipped: chunks already complete in the output (from an earlier, interrupted run).
        seconds: wall time of this run (cluster start to last chunk).
        megapixels_per_second: image pixels (voxels) segmented by this run per second.
    """

    output_path: str
    chunks: int
    done: int
    skipped: int
    seconds: float
    megapixels_per_second: float

    def __str__(self) -> str:
        return (
            f"Segmented {self.done} of {self.chunks} chunks ({self.skipped} already complete) into "
            f"{self.output_path} in {self.seconds:.1f} s ({self.megapixels_per_second:.2f} Mpixel/s)"
        )


def _is_local(scheduler: Any) -> bool:
    """Whether ``scheduler`` asks for a new local cluster (``None``, ``"none"``, ``"local"``, ``"null"``, ``""``)."""
    if scheduler is None:
        return True
    return isinstance(scheduler, str) and scheduler.strip().lower() in ("", "none", "local", "null")


def start_client(
    scheduler: Any = None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    memory_limit: str | int = "2GiB",
    log_level: str | int | None = "WARNING",
) -> tuple[Any, Callable[[], None]]:
    """
    A ``dask.distributed`` client: on the cluster at ``scheduler`` (an address such as ``"tcp://host:8786"``,
    or a ``Client`` used as it is), or, for ``None`` / ``"none"`` / ``"local"``, on a new ``LocalCluster`` of
    ``n_workers`` processes bound to 127.0.0.1 with ``threads_per_worker`` threads and ``memory_limit`` each.
    The local workers start without dask's ``MALLOC_TRIM_THRESHOLD_=65536``, which slows torch's convolutions
    about 3x (see docs/benchmarks.md); start the workers of your own cluster without it too.

    ``log_level``: the level from which dask's own messages (``distributed``, ``tornado``: the cluster's start
    and stop, about 40 lines at INFO) are shown while the local cluster lives; ``None`` leaves them as configured.

    Returns:
        the client and a function that closes what this call started.
    """
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, lambda: None
    if _is_local(scheduler):
        for name, value in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        import dask

        levels = {n: logging.getLogger(n).level for n in ("distributed", "tornado")}
        if log_level is not None:
            for n in levels:
                logging.getLogger(n).setLevel(log_level)
        # dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc hand every large
        # temporary back to the OS: torch's convolutions then run about 3x slower (page faults on every tile)
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                memory_limit=memory_limit,
                processes=True,
                host="127.0.0.1",
                dashboard_address=":0",  # a free port on 127.0.0.1, never a fixed one
            )
        client = Client(cluster)

        def close() -> None:
            client.close()
            cluster.close()
            for name_, level in levels.items():
                logging.getLogger(name_).setLevel(level)

        return client, close
    if not isinstance(scheduler, str):
        raise TypeError(
            f"scheduler must be None, an address string or a distributed.Client, got {type(scheduler).__name__}."
        )
    client = Client(scheduler, timeout="30s")
    return client, client.close


def _open_array(root: str, sub: str) -> Any:
    key = (root, sub)
    if key not in _ARRAYS:
        _ARRAYS[key] = zarr.open_array(os.path.join(root, sub), mode="r+")
    return _ARRAYS[key]


def _write_chunk(
    loader: Any,
    inferer: OverlapTileInferer,
    blocks: list,
    region_start: tuple[int, ...],
    window: tuple[tuple[int, int], ...],
    image_size: tuple[int, ...],
    output_size: tuple[int, ...],
    batch_dims: int,
    chunk_index: tuple[int, ...],
    intensity: tuple[float, float] | None,
    spec: dict,
) -> tuple[int, float]:
    """Compute one chunk, write its outputs, then mark it done. Returns (pixels, seconds)."""
    t0 = time.perf_counter()
    logits = _predict_chunk(
        loader, inferer, blocks, region_start, window, image_size, output_size, batch_dims, np.float32, intensity
    )
    prob = torch.softmax(torch.from_numpy(logits), dim=batch_dims)
    root = spec["root"]
    bidx, sidx = chunk_index[:batch_dims], chunk_index[batch_dims:]
    start = [s * c for s, c in zip(sidx, spec["chunk"])]
    spatial = tuple(slice(a, a + n) for a, n in zip(start, output_size))
    batch = tuple(slice(b, b + 1) for b in bidx)
    perm = spec["perm"]  # canonical (*batch, c, *spatial) -> output axes
    channels = spec["channels"]
    selected = prob[(slice(None),) * batch_dims + (channels,)]
    canonical = batch + (slice(None),) + spatial
    region = tuple(canonical[p] for p in perm)
    _open_array(root, "0")[region] = selected.permute(perm).numpy().astype(spec["dtype"])
    fg = prob[(slice(None),) * batch_dims + (slice(spec["mask_channel"], spec["mask_channel"] + 1),)]
    label_region = tuple(r for r, p in zip(region, perm) if p != batch_dims)
    label_perm = [p if p < batch_dims else p - 1 for p in perm if p != batch_dims]
    squeeze = fg.reshape(fg.shape[:batch_dims] + fg.shape[batch_dims + 1 :])
    if spec["threshold"] is not None:
        mask = (squeeze >= spec["threshold"]).to(torch.uint8)
        _open_array(root, "labels/mask/0")[label_region] = mask.permute(label_perm).numpy()
    if spec["instances"] is not None:
        labels = spec["instances"](fg.reshape(1, *output_size))
        labels = torch.as_tensor(np.asarray(labels)).reshape(squeeze.shape).to(torch.int64)
        _open_array(root, "labels/instances/0")[label_region] = labels.permute(label_perm).numpy().astype(np.uint32)
    _open_array(root, PROGRESS_ARRAY)[tuple(slice(i, i + 1) for i in chunk_index)] = 1
    return math.prod(output_size), time.perf_counter() - t0


def _checkpoint_id(loader: Any) -> dict:
    path = getattr(loader, "checkpoint", None)
    if not path:
        return {"checkpoint": None}
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"checkpoint": os.path.abspath(path), "checkpoint_sha256": digest.hexdigest()}


def _describe(obj: Any, depth: int = 3) -> Any:
    """A description of an option object that stays the same from run to run (no memory addresses): its type and
    its public attributes, objects among them described alike (``depth`` levels)."""
    simple = (int, float, str, bool, type(None))
    if isinstance(obj, simple):
        return obj
    if isinstance(obj, (tuple, list)):
        return [_describe(v, depth) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): _describe(v, depth) for k, v in obj.items()}
    kind = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    out: dict = {"type": f"{getattr(obj, '__module__', None) or type(obj).__module__}.{kind}"}
    if depth > 0 and not callable(getattr(obj, "__code__", None)):
        for k, v in sorted(getattr(obj, "__dict__", {}).items()):
            if not k.startswith("_") and not isinstance(v, (torch.Tensor, np.ndarray, torch.nn.Module)):
                out[k] = _describe(v, depth - 1)
    return out


def _inferer_id(inferer: Any) -> dict:
    if isinstance(inferer, DihedralTTAInferer):
        return {"tta": inferer.group, "spatial_axes": list(inferer.spatial_axes),
                "postprocess": _describe(inferer.postprocess),
                **_inferer_id(inferer.inferer)}
    return {
        k: (str(v) if v is not None and not isinstance(v, (int, float, str, bool, list, tuple)) else v)
        for k, v in sorted(vars(inferer).items())
        if k in ("roi_size", "input_roi_size", "memory_budget_mb", "overlap", "amp_dtype", "sw_batch_size")
    }


def _json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def _differences(old: Mapping, new: Mapping) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [k for k in keys if k != "intensity_ranges" and _json(old.get(k)) != _json(new.get(k))]


def segment_to_zarr(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    network: NetworkLoader | torch.nn.Module,
    inferer: OverlapTileInferer | DihedralTTAInferer | None = None,
    axes: str | None = None,
    chunk_size: Sequence[int] | int | None = None,
    channels: Sequence[int] | None = None,
    probability_dtype: str = "float32",
    mask_channel: int = 1,
    threshold: float | None = None,
    instances: Callable[[torch.Tensor], Any] | None = None,
    normalize: str = "minmax",
    scheduler: Any = None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    memory_limit: str | int = "2GiB",
    torch_threads: int | None = None,
    progress: bool | None = None,
    name: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    dask_log_level: str | int | None = "WARNING",
) -> JobSummary:
    """
    Segment an image on disk that need not fit in memory into an OME-Zarr output, chunk by chunk, on a
    ``dask.distributed`` cluster; restartable (see the module docstring).

    Args:
        input_path: a zarr array, an OME-Zarr image or a TIFF / BigTIFF file (:py:func:`open_lazy`).
        output_path: the OME-Zarr group to write (``.zarr``): created when missing; an output of the same job
            is resumed; anything else there is refused.
        network: a :py:class:`NetworkLoader` (a module or factory plus checkpoint, built once per worker).
        inferer: the tile inferer each chunk runs (``roi_size``, ``sw_batch_size``, ``amp_dtype``), or a
            :py:class:`~monai_unet2015.inferers.DihedralTTAInferer` around one for test-time augmentation (exact:
            equal to it on the whole image).
        axes: the input's axes when the file does not name them (see :py:func:`overlap_tile_dask`).
        chunk_size: output chunk edge per spatial axis (rounded up to the network's grid).
        channels: the softmax channels written to the image array ``0`` (default: all).
        probability_dtype: ``"float32"`` or ``"float16"``.
        mask_channel: the foreground channel for ``threshold`` and ``instances``.
        threshold: write ``labels/mask`` (``probability[mask_channel] >= threshold``, uint8, as ``AsDiscrete``
            keeps it) when given.
        instances: write ``labels/instances`` (uint32), ``instances(probability[mask_channel][None])`` per chunk,
            e.g. a :py:class:`~monai_unet2015.transforms.instances.watershed.WatershedInstances`; needs chunks
            holding whole images
            (``chunk_size`` at least the image's), since instances are not merged across chunks.
        normalize: ``"minmax"`` rescales each image (each index of the non-spatial axes) to [0, 1] by its
            minimum and maximum as ``ScaleIntensity`` does (one extra pass over the input, remembered in the
            output for restarts); ``"standardize"`` to zero mean and unit variance per image as
            ``NormalizeIntensity`` does (population standard deviation, 1 where it is 0); ``"none"`` feeds the
            voxels as they are.
        scheduler: ``None`` (a local cluster of ``n_workers``) or a scheduler address / ``Client``.
        n_workers: worker processes of the local cluster.
        threads_per_worker: threads (concurrent chunks) per local worker.
        memory_limit: memory limit per local worker (dask's spilling and pausing act on it).
        torch_threads: torch threads per worker; default: the machine's cores shared among the local workers.
        progress: a progress bar (default: when stderr is a terminal; log lines otherwise).
        name: the image name in the OME-Zarr metadata (e.g. the bundle's name).
        attributes: stored under the output's ``"unet2015"`` attribute with the job's parameters (e.g. the
            bundle's name and version).
        dask_log_level: dask's own messages from this level up while a local cluster runs (see
            :py:func:`start_client`); ``None`` leaves dask's logging as configured.

    Returns:
        a :py:class:`JobSummary`.
    """
    _require_dask()
    t_start = time.perf_counter()
    output_path = os.path.abspath(os.fspath(output_path))
    image = open_lazy(input_path, "input_path")
    normalize = str(normalize).lower()
    if normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}.")
    if probability_dtype not in ("float32", "float16"):
        raise ValueError(f"probability_dtype must be 'float32' or 'float16', got {probability_dtype!r}.")
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in [0, 1] or None, got {threshold!r}.")
    if not isinstance(network, NetworkLoader):
        network = NetworkLoader(network)
    plan = _plan_graph(image.data, network, inferer, axes or image.axes, chunk_size, None)
    nb = plan.batch_dims
    k = plan.out_channels
    channels = list(range(k)) if channels is None else [int(c) for c in channels]
    if not channels or any(not 0 <= c < k for c in channels):
        raise ValueError(f"channels must be indices of the network's {k} output channels, got {channels!r}.")
    if not 0 <= int(mask_channel) < k:
        raise ValueError(f"mask_channel must be one of the network's {k} output channels, got {mask_channel!r}.")
    if instances is not None and any(len(c) > 1 for c in plan.layout.chunks):
        raise ValueError(
            f"instances need chunks holding whole images (they are not merged across chunks): the image is "
            f"{plan.layout.image_size} but chunk_size gives chunks {tuple(c[0] for c in plan.layout.chunks)}; give "
            f"chunk_size >= {max(plan.layout.image_size)} or leave instances off."
        )
    out_axes = plan.out_axes
    canonical_axes = plan.canonical_axes
    perm = plan.output_order
    grid = tuple(len(c) for c in plan.canonical.chunks[:nb]) + tuple(len(c) for c in plan.layout.chunks)
    batch_shape = tuple(int(s) for s in plan.canonical.shape[:nb])
    fingerprint = _json(
        {
            "input_path": os.path.abspath(image.path),
            "input_shape": list(image.data.shape),
            "input_dtype": str(image.data.dtype),
            "axes": plan.axes,
            "output_axes": out_axes,
            "chunk_size": [c[0] for c in plan.layout.chunks],
            "channels": channels,
            "probability_dtype": probability_dtype,
            "mask_channel": int(mask_channel),
            "threshold": None if threshold is None else float(threshold),
            "instances": _describe(instances),
            "normalize": normalize,
            "inferer": _inferer_id(plan.inferer),
            **_checkpoint_id(network),
            **dict(attributes or {}),
        }
    )
    existing = _existing_job(output_path, fingerprint)
    spacing = dict(zip(image.axes, image.spacing)) if image.axes and image.spacing else {}

    def shape_in(axes_: str, chan: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        full = dict(zip(canonical_axes, (*batch_shape, chan, *plan.layout.image_size)))
        chunk = dict(zip(canonical_axes, ((1,) * nb + (chan,) + tuple(c[0] for c in plan.layout.chunks))))
        return tuple(full[a] for a in axes_), tuple(chunk[a] for a in axes_)

    if existing is not None:
        done = zarr.open_array(os.path.join(output_path, PROGRESS_ARRAY), mode="r")[...].astype(bool)
        if done.all():  # nothing left: no cluster needed
            seconds = time.perf_counter() - t_start
            return JobSummary(output_path, int(done.size), 0, int(done.size), seconds, 0.0)
    client, close = start_client(scheduler, n_workers, threads_per_worker, memory_limit, dask_log_level)
    try:
        if torch_threads is None and _is_local(scheduler):
            torch_threads = max(1, (os.cpu_count() or 1) // (n_workers * threads_per_worker))
        network.threads = torch_threads if torch_threads is not None else network.threads
        if existing is None:
            ranges = _intensity_ranges(plan, normalize)
            fingerprint["intensity_ranges"] = ranges
            shape, chunks = shape_in(out_axes, len(channels))
            label_axes = out_axes.replace("c", "")
            lshape, lchunks = shape_in(label_axes, 1)
            labels = []
            if threshold is not None:
                labels.append(("mask", OutputArray("labels/mask/0", label_axes, lshape, lchunks, "uint8")))
            if instances is not None:
                labels.append(("instances", OutputArray("labels/instances/0", label_axes, lshape, lchunks, "uint32")))
            group = create_ome_zarr(
                output_path,
                OutputArray("0", out_axes, shape, chunks, probability_dtype),
                labels,
                spacing=spacing,
                unit=image.unit,
                name=name,
            )
            group.create_array(PROGRESS_ARRAY, shape=grid, chunks=(1,) * len(grid), dtype="uint8", fill_value=0)
            group.attrs["unet2015"] = fingerprint  # last: an output without it was never started
            done = np.zeros(grid, dtype=bool)
        else:
            ranges = existing["intensity_ranges"]
        summary = _run(client, plan, network, output_path, done, ranges, grid, perm, channels, probability_dtype,
                       int(mask_channel), threshold, instances, progress)
    finally:
        close()
    done_now, pixels = summary
    seconds = time.perf_counter() - t_start
    rate = pixels / 1e6 / max(seconds, 1e-9)
    result = JobSummary(output_path, int(done.size), done_now, int(done.sum()), seconds, rate)
    logger.debug(str(result))
    return result


def _existing_job(output_path: str, fingerprint: Mapping) -> dict | None:
    """The stored fingerprint when ``output_path`` holds the output of this same job; ``None`` when nothing is there."""
    if not os.path.exists(output_path):
        return None
    if os.path.isdir(output_path) and not os.listdir(output_path):
        os.rmdir(output_path)  # an empty folder holds nothing to protect
        return None
    try:
        group = zarr.open_group(output_path, mode="r")
        stored = dict(group.attrs.get("unet2015", {}))
    except Exception:
        stored = {}
    if not stored or PROGRESS_ARRAY not in group:
        raise ValueError(
            f"output_path {output_path} already holds something that is not the output of a monai_unet2015 job; "
            "nothing was written: give a new output_path."
        )
    diff = _differences(stored, fingerprint)
    if diff:
        shown = ", ".join(f"{k} (stored {stored.get(k)!r}, now {fingerprint.get(k)!r})" for k in diff[:3])
        raise ValueError(
            f"output_path {output_path} holds the output of another job, differing in {shown}; nothing was "
            "written: give a new output_path, or rerun with the options that made it to resume it."
        )
    return stored


def _intensity_ranges(plan: _Plan, normalize: str) -> list | None:
    """Per image (index of the non-spatial axes), the ``(low, high)`` that ``(x - low) / (high - low)`` maps it
    with: its (min, max), or for ``"standardize"`` its (mean, mean + std); computed on the cluster."""
    if normalize == "none":
        return None
    import dask

    x = plan.canonical
    axes = tuple(range(plan.batch_dims, x.ndim))
    if normalize == "standardize":
        mean, std = dask.compute(x.mean(axis=axes, dtype=np.float64), x.std(axis=axes, dtype=np.float64))
        std = np.where(np.asarray(std) > 0, std, 1.0)
        low, high = np.asarray(mean), np.asarray(mean) + std
    else:
        low, high = dask.compute(x.min(axis=axes), x.max(axis=axes))
    return np.stack([np.asarray(low, np.float64).ravel(), np.asarray(high, np.float64).ravel()], 1).tolist()


def _run(
    client: Any,
    plan: _Plan,
    network: NetworkLoader,
    output_path: str,
    done: np.ndarray,
    ranges: list | None,
    grid: tuple[int, ...],
    perm: list[int],
    channels: list[int],
    probability_dtype: str,
    mask_channel: int,
    threshold: float | None,
    instances: Any,
    progress: bool | None,
) -> tuple[int, int]:
    from dask.base import tokenize
    from distributed import as_completed

    nb = plan.batch_dims
    spec = {
        "root": output_path,
        "chunk": tuple(c[0] for c in plan.layout.chunks),
        "perm": perm,
        "channels": channels,
        "dtype": probability_dtype,
        "mask_channel": mask_channel,
        "threshold": threshold,
        "instances": instances,
    }
    name = "unet2015-zarr-" + tokenize(output_path, network.token, time.time())
    batch_shape = plan.canonical.shape[:nb]

    def extra(index: tuple) -> tuple:
        bidx, sidx = index
        flat = int(np.ravel_multi_index(bidx, batch_shape)) if nb else 0
        return (tuple(bidx) + tuple(sidx), None if ranges is None else tuple(ranges[flat]), spec)

    graph = _graph(plan, network, name, _write_chunk, extra)
    keys = [key for key in graph if key[0] == name and not done[tuple(key[1 : 1 + nb] + key[2 + nb :])]]
    from dask.highlevelgraph import HighLevelGraph

    hlg = HighLevelGraph.from_collections(name, graph, dependencies=[plan.canonical])
    futures = client.get(hlg, keys, sync=False)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    bar = tqdm(total=len(keys), desc="chunks", unit="chunk") if show and has_tqdm else None
    pixels, count, next_log = 0, 0, 0.1
    busy = 0.0
    for future in as_completed(futures):
        n, seconds = future.result()
        pixels += n
        busy += seconds
        count += 1
        if bar is not None:
            bar.update(1)
        elif count / max(len(keys), 1) >= next_log or count == len(keys):
            logger.info("chunks: %d / %d", count, len(keys))
            next_log += 0.1
    if bar is not None:
        bar.close()
    logger.debug("chunk tasks busy %.1f s in all", busy)
    if os.environ.get("UNET2015_DEBUG"):
        print(f"busy {busy:.1f} s", file=sys.stderr)
    return count, pixels

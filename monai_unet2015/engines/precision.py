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

"""The numeric precision of training chosen at run time: bf16 autocast and ``channels_last`` where they are faster.

On a CPU with native bf16 (AMX or AVX512-BF16) bf16 autocast makes a U-Net training step 1.5-4x faster; on an
AVX2-only CPU the same convolutions fall back to a reference path about 250x slower than float32. Neither is
assumed: :py:func:`choose_precision` reads the CPU flags, then times a few training steps of the actual network
in each candidate setting and keeps the fastest (cached per process, logged once).
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["PrecisionChoice", "choose_precision", "cpu_flags", "cpu_has_native_bf16", "measure_step_times"]

logger = logging.getLogger(__name__)

#: CPU flags of native bf16 arithmetic (``/proc/cpuinfo``), with the name the log gives them
BF16_FLAGS = {"amx_bf16": "AMX", "avx512_bf16": "AVX512-BF16", "bf16": "Arm BF16"}
_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
_CACHE: dict[tuple, PrecisionChoice] = {}


@dataclass(frozen=True)
class PrecisionChoice:
    """How to run a network: autocast dtype (``None``: float32) and memory format, and why.

    Attributes:
        dtype: the autocast dtype, ``torch.bfloat16`` or ``torch.float16``; ``None`` for float32.
        channels_last: the network's weights in ``channels_last`` (``channels_last_3d`` for 3D networks).
        reason: the decision in one line, as logged.
        times: seconds per training step of each measured setting, the fastest of its measured steps (empty when
            nothing was measured).
    """

    dtype: torch.dtype | None = None
    channels_last: bool = False
    reason: str = ""
    times: dict[str, float] = field(default_factory=dict)

    def apply(self, network: torch.nn.Module) -> torch.nn.Module:
        """Puts ``network``'s weights in the chosen memory format, in place (the optimiser's parameters stay
        the same objects), and returns it; the default layout is left as it is."""
        return _to_format(network, True) if self.channels_last else network

    def __str__(self) -> str:
        return self.reason


def _to_format(network: torch.nn.Module, channels_last: bool) -> torch.nn.Module:
    """``network`` with its 4D (5D) weights in ``channels_last`` (``channels_last_3d``) or the default layout."""
    if not channels_last:
        return network.to(memory_format=torch.contiguous_format)
    dims = next((p.ndim for p in network.parameters() if p.ndim >= 4), 4)
    return network.to(memory_format=torch.channels_last_3d if dims == 5 else torch.channels_last)


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags from ``cpuinfo`` (x86 ``flags``, Arm ``Features`` lines), or ``None`` where the
    file cannot be read (not Linux).

    Examples::

        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix="cpuinfo", delete=False) as f:
        ...     _ = f.write("processor\\t: 0\\nflags\\t\\t: fpu sse2 avx2 avx512f avx512_bf16\\n")
        >>> sorted(cpu_flags(f.name))
        ['avx2', 'avx512_bf16', 'avx512f', 'fpu', 'sse2']
        >>> cpu_flags("/no/such/file") is None
        True
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The CPU's native bf16 instructions (``"AMX"``, ``"AVX512-BF16"``, ``"Arm BF16"``), or ``None``.

    Reads the flags of ``cpuinfo``; where it cannot be read, asks torch's own CPU detection. ``None`` means
    bf16 autocast would run on a slow fallback (about 250x slower than float32 on an AVX2-only CPU).

    Examples::

        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix="cpuinfo", delete=False) as f:
        ...     _ = f.write("flags\\t\\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\\n")
        >>> cpu_has_native_bf16(f.name)
        'AMX'
        >>> with open(f.name, "w") as g:
        ...     _ = g.write("flags\\t\\t: fpu avx2 fma\\n")
        >>> cpu_has_native_bf16(f.name) is None
        True
    """
    flags = cpu_flags(cpuinfo)
    if flags is None:  # not Linux: torch's cpuinfo-based detection (private, so guarded)
        cpu = getattr(torch, "cpu", None)
        flags = {
            flag
            for flag, probe in (("amx_bf16", "_is_amx_tile_supported"), ("avx512_bf16", "_is_avx512_bf16_supported"))
            if callable(getattr(cpu, probe, None)) and getattr(cpu, probe)()
        }
    return next((name for flag, name in BF16_FLAGS.items() if flag in flags), None)


def _unwrap(network: torch.nn.Module) -> torch.nn.Module:
    wrapped = isinstance(network, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel))
    return network.module if wrapped else network


def _example_input(network: torch.nn.Module, example_size: int | Sequence[int], device: torch.device) -> torch.Tensor:
    """A random ``(1, C, *spatial)`` tile for ``network``: ``C`` and the number of spatial dims from its first
    convolution, ``spatial`` from ``example_size`` (one int for every axis)."""
    conv = next((m for m in network.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)), None)
    if conv is None:
        raise ValueError(f"{type(network).__name__} has no convolution to read its input channels from.")
    dims = len(conv.kernel_size)
    spatial = (int(example_size),) * dims if isinstance(example_size, int) else tuple(int(s) for s in example_size)
    return torch.rand(1, conv.in_channels, *spatial, device=device)


def _label(dtype: torch.dtype | None, channels_last: bool) -> str:
    return _NAMES[dtype] + ("+channels_last" if channels_last else "")


def measure_step_times(
    network: torch.nn.Module,
    example_size: int | Sequence[int],
    variants: Sequence[tuple[torch.dtype | None, bool]],
    steps: int = 3,
    max_seconds: float = 20.0,
    timer: Callable[[], float] = time.perf_counter,
) -> tuple[dict[str, float], int]:
    """Seconds of one training step (forward, backward) of a copy of ``network`` in each variant.

    Each variant ``(dtype, channels_last)`` runs the forward pass under ``torch.autocast`` of ``dtype``
    (``None``: float32) with the weights in the default or the ``channels_last`` memory format, then the
    backward pass of the mean squared output. One warm-up step of each, then up to ``steps`` rounds, one step of
    each variant per round (so that load from other processes hits all alike), fewer once ``max_seconds`` would
    be exceeded (at least one). ``network`` itself, its gradients and the random number generators are left
    as they were.

    Args:
        network: the network to time (a ``DataParallel`` / ``DistributedDataParallel`` is unwrapped).
        example_size: spatial size of the tile, one int for every axis or one per axis.
        variants: the ``(dtype, channels_last)`` settings to time.
        steps: measured rounds at most.
        max_seconds: time budget of the whole measurement, warm-up included.
        timer: the clock.

    Returns:
        ``({label: seconds}, rounds)``: the fastest step of each variant (other processes only ever add time),
        labels such as ``"fp32"``, ``"bf16+channels_last"``.

    Examples::

        >>> from monai_unet2015.networks.nets import UNet2015
        >>> net = UNet2015(features=(4, 8, 16))
        >>> times, rounds = measure_step_times(net, 60, [(None, False), (None, True)], steps=2)
        >>> sorted(times), rounds
        (['fp32', 'fp32+channels_last'], 2)
    """
    net = copy.deepcopy(_unwrap(network)).train()
    device = next(net.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step(dtype: torch.dtype | None, channels_last: bool) -> float:
        _to_format(net, channels_last)
        sync()
        start = timer()
        net.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            pred = net(x)
        pred.float().square().mean().backward()
        sync()
        return timer() - start

    times: dict[str, list[float]] = {_label(*v): [] for v in variants}
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # dropout draws: training's random sequence stays the same
        x = _example_input(net, example_size, device)
        begin = timer()
        for v in variants:  # warm-up: oneDNN / cuDNN primitives
            step(*v)
        rounds, last = 0, timer() - begin
        while rounds < max(1, steps) and (rounds == 0 or timer() - begin + last <= max_seconds):
            t0 = timer()
            for v in variants:
                times[_label(*v)].append(step(*v))
            rounds, last = rounds + 1, timer() - t0
    return {k: min(t) for k, t in times.items()}, rounds


def _as_choice(value: bool | str, key: str) -> bool | str:
    if isinstance(value, bool) or value == "auto":
        return value
    raise ValueError(f"{key} must be True, False or 'auto', got {value!r}.")


def _dtypes(device: torch.device, amp: bool | str, cpuinfo: str | Path) -> tuple[list[torch.dtype | None], str]:
    """The autocast dtypes to consider and what the hardware says."""
    if amp is False:
        return [None], "amp off"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return [torch.bfloat16], "CUDA with bf16"
        return [torch.float16], "CUDA without bf16: float16 with the grad scaler"
    if device.type != "cpu":
        return [None], f"no autocast choice on {device.type}"
    native = cpu_has_native_bf16(cpuinfo)
    if native is None:
        return [None], "CPU has no native bf16 (no avx512_bf16 / amx_bf16 flag)"
    return ([torch.bfloat16] if amp is True else [None, torch.bfloat16]), f"{native}"


def _formats(network: torch.nn.Module, channels_last: bool | str) -> tuple[list[bool], str]:
    dims = {p.ndim for p in network.parameters()}
    if channels_last is False:
        return [False], ""
    if network is not _unwrap(network):
        return [False], "channels_last: not for a wrapped (DataParallel) network"
    if not dims & {4, 5}:
        return [False], "channels_last: no 2D / 3D weights"
    return ([True] if channels_last is True else [False, True]), ""


def _decide(times: dict[str, float], variants: list[tuple[torch.dtype | None, bool]], min_speedup: float):
    """The fastest variant, if it beats the first (the reference) by ``min_speedup``; else the reference."""
    ref = variants[0]
    best = min(variants, key=lambda v: times[_label(*v)])
    if times[_label(*best)] * min_speedup > times[_label(*ref)]:
        best = ref
    return best


def _summary(dtype, channels_last, note, times, rounds, x_shape, min_speedup) -> str:
    """The decision in one line: what is on, why, and the measured seconds per step."""
    name = _NAMES[dtype] if dtype is not None else "bf16"
    head = f"{name} autocast: {'on' if dtype is not None else 'off'}, channels_last: {'on' if channels_last else 'off'}"
    if not times:
        return f"{head} ({note}; not measured)" if note else f"{head} (not measured)"
    ref, chosen = next(iter(times)), _label(dtype, channels_last)
    verdict = (
        f"{chosen} {times[ref] / times[chosen]:.2f}x faster than {ref}" if chosen != ref
        else f"nothing {min_speedup:g}x faster than {ref}"
    )
    ranked = ", ".join(f"{k} {t:.3f} s" for k, t in sorted(times.items(), key=lambda kv: kv[1]))
    shape = "x".join(str(s) for s in x_shape)
    return f"{head} ({note}; {verdict} in {rounds} step(s) each on a {shape} tile: {ranked})"


def _cpu_share(cpu_seconds: float, wall_seconds: float, threads: int) -> float:
    """The share of its ``threads`` that a process kept busy: CPU time over ``threads`` x wall time (at most 1)."""
    return min(1.0, cpu_seconds / max(wall_seconds * max(threads, 1), 1e-9))


def _warn_if_contended(share: float, threads: int, min_share: float = 0.75) -> bool:
    """Logs a warning when the measurement kept less than ``min_share`` of its threads busy; returns whether."""
    if share >= min_share:
        return False
    logger.warning(
        "the precision was measured while other processes used the cores (this process kept %.0f%% of its %d "
        "thread(s) busy): the decision may be wrong; set amp and channels_last to true or false to choose yourself",
        100 * share, threads)
    return True


def choose_precision(
    network: torch.nn.Module,
    example_size: int | Sequence[int],
    device: torch.device | str | None = None,
    amp: bool | str = "auto",
    channels_last: bool | str = "auto",
    steps: int = 3,
    max_seconds: float = 20.0,
    min_speedup: float = 1.05,
    cpuinfo: str | Path = "/proc/cpuinfo",
) -> PrecisionChoice:
    """The autocast dtype and memory format to train ``network`` with, chosen on this machine.

    - ``amp=False``: float32. ``amp=True``: bf16 autocast where the device has it natively (a CPU with AMX /
      AVX512-BF16; on CUDA bf16 where supported, else float16), without measuring; float32 on a CPU without
      native bf16. ``amp="auto"``: on a CPU with native bf16, bf16 only if it measures faster than float32;
      elsewhere as ``True``.
    - ``channels_last``: ``True`` / ``False``, or ``"auto"``: only if it measures faster.

    What is left open is decided by :py:func:`measure_step_times` (a few forward and backward steps of a copy of
    ``network`` on a random tile of ``example_size``, a few seconds for the bundles' networks at 572 x 572); a
    setting replaces float32 / the default layout only when it is ``min_speedup`` times faster. The CPU flags
    come first: bf16 is never timed on a CPU without it. The decision is cached per process (per device,
    weight shapes, tile and options) and logged once at ``INFO``; a CPU measurement that other processes slowed
    (this process kept under 75 % of its threads busy) may pick the slower setting and logs a warning saying so.
    Under ``torch.distributed`` rank 0 decides for every rank. Apply the memory format with
    :py:meth:`PrecisionChoice.apply`; give the dtype to :py:class:`~monai_unet2015.engines.WeightMapTrainer`
    (``amp_dtype``) and the validation inferer.

    Args:
        network: the network to train.
        example_size: the training tile's spatial size (one int for every axis, or one per axis).
        device: where it trains; defaults to the device of its parameters.
        amp: ``True``, ``False`` or ``"auto"`` (see above).
        channels_last: ``True``, ``False`` or ``"auto"``.
        steps: measured steps of each setting at most.
        max_seconds: time budget of the measurement (at least one measured step of each setting).
        min_speedup: how much faster a setting must be than float32 in the default layout.
        cpuinfo: where the CPU flags are read (tests).

    Raises:
        ValueError: ``amp`` or ``channels_last`` is not ``True``, ``False`` or ``"auto"``.

    Examples::

        >>> import torch
        >>> from monai_unet2015.engines import choose_precision
        >>> from monai_unet2015.networks.nets import UNet2015
        >>> net = UNet2015(features=(4, 8, 16))
        >>> choice = choose_precision(net, 60, amp=False, channels_last=False)  # nothing left to measure
        >>> choice.dtype, choice.channels_last
        (None, False)
        >>> print(choice)
        bf16 autocast: off, channels_last: off (amp off; not measured)
        >>> net = choice.apply(net)  # the memory format (here unchanged)
    """
    amp, channels_last = _as_choice(amp, "amp"), _as_choice(channels_last, "channels_last")
    params = list(network.parameters())
    device = torch.device(device) if device is not None else (params[0].device if params else torch.device("cpu"))
    shape = tuple(_example_input(_unwrap(network), example_size, torch.device("meta")).shape)
    key = (str(device), amp, channels_last, type(network).__name__, tuple(p.shape for p in params), shape,
           steps, max_seconds, min_speedup, str(cpuinfo))
    if key in _CACHE:
        return _CACHE[key]
    choice: list[PrecisionChoice | None] = [None]
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not distributed or torch.distributed.get_rank() == 0:
        dtypes, note = _dtypes(device, amp, cpuinfo)
        formats, format_note = _formats(network, channels_last)
        note = "; ".join(n for n in (note, format_note) if n)
        variants = list(itertools.product(dtypes, formats))
        times, rounds = {}, 0
        if len(variants) > 1:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            times, rounds = measure_step_times(network, example_size, variants, steps=steps, max_seconds=max_seconds)
            cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
            if device.type == "cpu" and wall_s >= 0.5:  # a real measurement: did other processes share the cores?
                threads = min(torch.get_num_threads(), os.cpu_count() or 1)
                _warn_if_contended(_cpu_share(cpu_s, wall_s, threads), threads)
        dtype, cl = _decide(times, variants, min_speedup) if times else variants[0]
        choice = [PrecisionChoice(dtype, cl, _summary(dtype, cl, note, times, rounds, shape, min_speedup), times)]
    if distributed:
        torch.distributed.broadcast_object_list(choice, src=0)
    _CACHE[key] = choice[0]
    logger.info("%s", choice[0].reason)
    return choice[0]

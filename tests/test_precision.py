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

"""Precision chosen at run time (bf16 autocast, channels_last) and WeightMapTrainer's CPU autocast.

No test asserts a timing: the CPU flags come from fake cpuinfo files and the measurement is replaced by fixed
figures or a fake clock, so every test passes on AVX2-only CPUs (CI) as on CPUs with AMX.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import torch

from monai.bundle import ConfigParser
from monai_unet2015.bundle import BundleInputError, as_bool_or_auto
from monai_unet2015.engines import WeightMapTrainer, choose_precision, cpu_flags, cpu_has_native_bf16, precision
from monai_unet2015.losses import WeightedCrossEntropyLoss
from monai_unet2015.networks.nets import UNet2015

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"
TINY = [4, 8, 16, 32, 64]
AMX = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n\n" * 2
AVX512_BF16 = "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n"
AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\nbugs\t\t: spectre_v1\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


@pytest.fixture(autouse=True)
def fresh_cache():
    precision._CACHE.clear()
    yield
    precision._CACHE.clear()


@pytest.fixture
def cpuinfo(tmp_path):
    def write(text: str) -> Path:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        return path

    return write


class FakeMeasurement:
    """Replaces ``measure_step_times``: fixed seconds per setting, records what it was asked to time."""

    def __init__(self, **seconds: float):
        self.seconds = {k.replace("_cl", "+channels_last"): v for k, v in seconds.items()}
        self.calls: list[list[str]] = []

    def __call__(self, network, example_size, variants, steps=3, max_seconds=20.0):
        labels = [precision._label(*v) for v in variants]
        self.calls.append(labels)
        return {k: self.seconds[k] for k in labels}, steps


def tiny_net():
    torch.manual_seed(0)
    return UNet2015(features=(4, 8, 16), dropout=0.0)


# ------------------------------------------------------------------------------------------- CPU flags
def test_cpu_flags_and_native_bf16(cpuinfo):
    assert cpu_has_native_bf16(cpuinfo(AMX)) == "AMX"
    assert cpu_has_native_bf16(cpuinfo(AVX512_BF16)) == "AVX512-BF16"
    assert cpu_has_native_bf16(cpuinfo(AVX2)) is None
    assert cpu_has_native_bf16(cpuinfo(ARM)) == "Arm BF16"
    assert cpu_flags(cpuinfo(AVX2)) == {"fpu", "sse2", "avx2", "fma"}  # the 'bugs' line is not a flag


def test_unreadable_cpuinfo_asks_torch(monkeypatch, tmp_path):
    missing = tmp_path / "none"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert cpu_has_native_bf16(missing) is None
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert cpu_has_native_bf16(missing) == "AVX512-BF16"


# ------------------------------------------------------------------------------------------- the decision
def test_avx2_cpu_never_times_bf16(cpuinfo, monkeypatch):
    fake = FakeMeasurement(fp32=1.0, fp32_cl=1.2)
    monkeypatch.setattr(precision, "measure_step_times", fake)
    for amp in ("auto", True):
        precision._CACHE.clear()
        choice = choose_precision(tiny_net(), 60, amp=amp, cpuinfo=cpuinfo(AVX2))
        assert choice.dtype is None and not choice.channels_last
        assert "bf16 autocast: off" in choice.reason and "no native bf16" in choice.reason
    assert fake.calls == [["fp32", "fp32+channels_last"]] * 2


def test_native_bf16_is_used_only_where_it_measures_faster(cpuinfo, monkeypatch):
    amx = cpuinfo(AMX)
    fake = FakeMeasurement(fp32=1.0, fp32_cl=0.9, bf16=0.5, bf16_cl=0.4)
    monkeypatch.setattr(precision, "measure_step_times", fake)
    choice = choose_precision(tiny_net(), 60, amp="auto", cpuinfo=amx)
    assert (choice.dtype, choice.channels_last) == (torch.bfloat16, True)
    assert fake.calls == [["fp32", "fp32+channels_last", "bf16", "bf16+channels_last"]]
    assert choice.reason == (
        "bf16 autocast: on, channels_last: on (AMX; bf16+channels_last 2.50x faster than fp32 in 3 step(s) each on "
        "a 1x1x60x60 tile: bf16+channels_last 0.400 s, bf16 0.500 s, fp32+channels_last 0.900 s, fp32 1.000 s)")
    assert choice.times == {"fp32": 1.0, "fp32+channels_last": 0.9, "bf16": 0.5, "bf16+channels_last": 0.4}

    precision._CACHE.clear()  # bf16 slower than float32 on this CPU: off, whatever the flags say
    monkeypatch.setattr(precision, "measure_step_times", FakeMeasurement(fp32=1.0, fp32_cl=1.1, bf16=1.5, bf16_cl=1.3))
    choice = choose_precision(tiny_net(), 60, amp="auto", cpuinfo=amx)
    assert (choice.dtype, choice.channels_last) == (None, False)
    assert choice.reason.startswith("bf16 autocast: off, channels_last: off (AMX; nothing 1.05x faster than fp32 in")

    precision._CACHE.clear()  # within min_speedup of float32: not worth the precision
    monkeypatch.setattr(precision, "measure_step_times", FakeMeasurement(fp32=1.0, fp32_cl=1.1, bf16=0.98, bf16_cl=1.3))
    assert choose_precision(tiny_net(), 60, cpuinfo=amx).dtype is None
    precision._CACHE.clear()
    assert choose_precision(tiny_net(), 60, cpuinfo=amx, min_speedup=1.01).dtype is torch.bfloat16


def test_explicit_choices_measure_only_what_is_left(cpuinfo, monkeypatch):
    fake = FakeMeasurement(fp32=1.0, fp32_cl=0.5, bf16=2.0, bf16_cl=3.0)
    monkeypatch.setattr(precision, "measure_step_times", fake)
    amx = cpuinfo(AMX)
    choice = choose_precision(tiny_net(), 60, amp=True, cpuinfo=amx)  # bf16 forced, the layout measured
    assert (choice.dtype, choice.channels_last) == (torch.bfloat16, False)  # bf16_cl is slower than bf16
    assert choose_precision(tiny_net(), 60, amp=False, cpuinfo=amx).channels_last  # fp32_cl: 2x fp32
    assert fake.calls == [["bf16", "bf16+channels_last"], ["fp32", "fp32+channels_last"]]

    def no_measurement(*args, **kwargs):
        raise AssertionError("nothing to measure")

    monkeypatch.setattr(precision, "measure_step_times", no_measurement)
    choice = choose_precision(tiny_net(), 60, amp=True, channels_last=True, cpuinfo=amx)
    assert (choice.dtype, choice.channels_last, choice.times) == (torch.bfloat16, True, {})
    assert choice.reason == "bf16 autocast: on, channels_last: on (AMX; not measured)"
    choice = choose_precision(tiny_net(), 60, amp=False, channels_last=False, cpuinfo=amx)
    assert (choice.dtype, choice.channels_last) == (None, False)
    wrapped = torch.nn.DataParallel(tiny_net())  # its weights stay in their layout
    choice = choose_precision(wrapped, 60, device="cpu", amp=True, cpuinfo=amx)
    assert (choice.dtype, choice.channels_last) == (torch.bfloat16, False) and "wrapped" in choice.reason


def test_cuda_takes_what_was_asked(monkeypatch):
    monkeypatch.setattr(precision, "measure_step_times", None)  # never called: nothing left to measure
    for supported, dtype in ((True, torch.bfloat16), (False, torch.float16)):
        precision._CACHE.clear()
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        choice = choose_precision(tiny_net(), 60, device="cuda", amp="auto", channels_last=False)
        assert choice.dtype is dtype and "CUDA" in choice.reason
        precision._CACHE.clear()
        assert choose_precision(tiny_net(), 60, device="cuda", amp=False, channels_last=False).dtype is None


def test_cached_and_logged_once(cpuinfo, monkeypatch, caplog):
    fake = FakeMeasurement(fp32=1.0, fp32_cl=0.99, bf16=0.5, bf16_cl=0.6)
    monkeypatch.setattr(precision, "measure_step_times", fake)
    amx = cpuinfo(AMX)
    with caplog.at_level(logging.INFO, logger="monai_unet2015.engines.precision"):
        first = choose_precision(tiny_net(), 60, cpuinfo=amx)
        assert choose_precision(tiny_net(), 60, cpuinfo=amx) is first  # same shapes: the cached decision
        choose_precision(tiny_net(), 92, cpuinfo=amx)  # another tile: decided again
    assert len(fake.calls) == 2
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == first.reason and len(lines) == 2
    assert "on a 1x1x60x60 tile" in lines[0] and "on a 1x1x92x92 tile" in lines[1]


def test_bad_choices():
    with pytest.raises(ValueError, match="amp must be True, False or 'auto'"):
        choose_precision(tiny_net(), 60, amp="yes")
    with pytest.raises(ValueError, match="channels_last must be"):
        choose_precision(tiny_net(), 60, channels_last=None)


# ------------------------------------------------------------------------------------------- the measurement
def test_measurement_leaves_the_network_and_the_random_state_alone():
    net = UNet2015(features=(4, 8, 16), dropout=0.5)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    clock = iter(range(10_000))
    rng = torch.get_rng_state()
    variants = [(None, False), (None, True)]
    times, rounds = precision.measure_step_times(
        net, 60, variants, steps=3, max_seconds=1000, timer=lambda: float(next(clock)))
    assert set(times) == {"fp32", "fp32+channels_last"} and rounds == 3
    assert all(t > 0 for t in times.values())
    assert torch.equal(rng, torch.get_rng_state())  # dropout of the copy drew from a forked generator
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(v, before[k]) and v.is_contiguous() for k, v in net.state_dict().items())
    clock = iter(range(10_000))  # each reading one second later: the budget allows one measured round
    timer = lambda: float(next(clock))  # noqa: E731
    _, rounds = precision.measure_step_times(net, 60, variants, steps=3, max_seconds=5, timer=timer)
    assert rounds == 1


def test_apply_puts_the_weights_in_channels_last_in_place():
    net = tiny_net()
    params = list(net.parameters())
    opt = torch.optim.SGD(params, lr=0.1)
    assert precision.PrecisionChoice(channels_last=True).apply(net) is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in opt.param_groups[0]["params"]]
    convs = [p for p in net.parameters() if p.ndim == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    x = torch.rand(1, 1, 60, 60)
    torch.testing.assert_close(net(x), tiny_net()(x), rtol=1e-4, atol=1e-5)  # same function


# ------------------------------------------------------------------------------------------- the trainer
def _batch():
    torch.manual_seed(1)
    return {"image": torch.rand(1, 1, 60, 60), "label": torch.randint(0, 2, (1, 1, 60, 60)),
            "weight": 1 + torch.rand(1, 1, 60, 60)}


def _run(amp_dtype="unset"):
    """One iteration of WeightMapTrainer; the dtypes its convolutions produced, its loss and its prediction."""
    net = tiny_net()
    seen: list[torch.dtype] = []
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            m.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    kwargs = {} if amp_dtype == "unset" else {"amp_dtype": amp_dtype}
    trainer = WeightMapTrainer(
        device="cpu", max_epochs=1, train_data_loader=[_batch()], network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1), loss_function=WeightedCrossEntropyLoss(),
        decollate=False, **kwargs)
    trainer.run()
    out = trainer.state.output
    return set(seen), out["loss"].detach(), out["pred"].detach(), [p.detach().clone() for p in net.parameters()]


def test_trainer_bf16_autocast_on_cpu():
    """bf16 convolutions, float32 loss, prediction and weights; the trainer's inferer is left as it was."""
    convs, loss, pred, params = _run("bfloat16")
    assert convs == {torch.bfloat16}
    assert loss.dtype == torch.float32 and pred.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in params)
    ref_convs, ref_loss, _, ref_params = _run(None)
    assert ref_convs == {torch.float32}
    assert float(loss) == pytest.approx(float(ref_loss), rel=0.05)  # bf16 rounding, the same step
    assert any(not torch.equal(p, q) for p, q in zip(params, ref_params))


def test_trainer_without_amp_dtype_is_unchanged():
    convs, loss, pred, params = _run()
    convs_none, loss_none, pred_none, params_none = _run(None)
    assert convs == convs_none == {torch.float32}
    assert torch.equal(loss, loss_none) and torch.equal(pred, pred_none)
    assert all(torch.equal(p, q) for p, q in zip(params, params_none))


def test_trainer_amp_dtype_errors():
    net = tiny_net()
    common = {"device": "cpu", "max_epochs": 1, "train_data_loader": [], "network": net,
              "optimizer": torch.optim.SGD(net.parameters(), lr=0.1), "loss_function": WeightedCrossEntropyLoss()}
    with pytest.raises(ValueError, match="float16 needs a CUDA device"):
        WeightMapTrainer(amp_dtype="float16", **common)
    with pytest.raises(ValueError, match="not both"):
        WeightMapTrainer(amp_dtype="bf16", amp=True, **common)
    with pytest.raises(ValueError, match="amp_dtype must be None"):
        WeightMapTrainer(amp_dtype="int8", **common)
    assert WeightMapTrainer(amp_dtype=torch.bfloat16, **common).amp_dtype is torch.bfloat16


# ------------------------------------------------------------------------------------------- the bundles
def test_as_bool_or_auto():
    assert [as_bool_or_auto(v, "amp") for v in ("auto", " Auto ", "true", "no", 0, True)] == [
        "auto", "auto", True, False, False, True]
    with pytest.raises(BundleInputError, match=r"--channels_last got 'fast'; use auto or one of true/false"):
        as_bool_or_auto("fast", "channels_last")


@pytest.mark.parametrize("name", ["unet2015_em_membranes", "unet2015_dic_hela"])
def test_bundle_train_config_uses_the_choice(name, cpuinfo, monkeypatch):
    """With the default amp / channels_last 'auto', the trainer and the validation inferer get the measured
    dtype and the run's first steps put the network in the measured layout."""
    monkeypatch.setattr(precision, "measure_step_times", FakeMeasurement(fp32=1.0, fp32_cl=0.9, bf16=0.5, bf16_cl=0.3))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo: "AMX")
    root = BUNDLES / name
    parser = ConfigParser()
    parser.read_config([str(root / "configs" / f) for f in ("inference.json", "train.json")])
    parser["bundle_root"] = str(root)
    parser["features"] = TINY
    parser["device"] = "$torch.device('cpu')"
    assert parser["amp"] == parser["channels_last"] == "auto"
    apply = parser["run"].index("$@precision.apply(@network)")
    assert apply < parser["run"].index("$@train#checkpoint_saver.attach(@train#trainer)")  # before training
    assert parser.get_parsed_content("train#trainer#amp_dtype") is torch.bfloat16
    assert parser.get_parsed_content("validate#inferer").amp_dtype is torch.bfloat16
    parser.get_parsed_content(f"run#{apply}")
    net = parser.get_parsed_content("network")
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in net.parameters() if p.ndim == 4)

    precision._CACHE.clear()
    parser = ConfigParser()
    parser.read_config([str(root / "configs" / f) for f in ("inference.json", "train.json")])
    parser["bundle_root"] = str(root)
    parser["features"] = TINY
    parser["amp"], parser["channels_last"] = "false", "off"
    assert parser.get_parsed_content("train#trainer#amp_dtype") is None
    assert parser.get_parsed_content("validate#inferer").amp_dtype is None


# ------------------------------------------------------------------------------- a measurement under load
def test_cpu_share_by_hand():
    assert precision._cpu_share(2.0, 1.0, 2) == 1.0  # both threads busy all along
    assert precision._cpu_share(1.3, 1.0, 2) == pytest.approx(0.65)  # another process took 0.7 s of the cores
    assert precision._cpu_share(3.0, 1.0, 2) == 1.0  # capped
    assert precision._cpu_share(0.5, 0.0, 2) == 1.0  # no wall time: nothing to say


def test_a_measurement_slowed_by_other_processes_is_flagged(cpuinfo, monkeypatch, caplog):
    """The measurement waits (sleeps) instead of computing, as a process whose cores are taken by others does:
    the choice is still made, and a warning says how to force it."""

    class Waiting(FakeMeasurement):
        def __call__(self, *args, **kwargs):
            time.sleep(0.6)
            return super().__call__(*args, **kwargs)

    monkeypatch.setattr(precision, "measure_step_times", Waiting(fp32=1.0, fp32_cl=0.9, bf16=0.5, bf16_cl=0.4))
    with caplog.at_level(logging.WARNING, logger=precision.__name__):
        choice = choose_precision(tiny_net(), 60, amp="auto", cpuinfo=cpuinfo(AMX))
    assert (choice.dtype, choice.channels_last) == (torch.bfloat16, True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "other processes used the cores" in warnings[0]
    assert "set amp and channels_last to true or false" in warnings[0]
    caplog.clear()
    assert not precision._warn_if_contended(0.9, 2) and not caplog.records  # busy enough: quiet

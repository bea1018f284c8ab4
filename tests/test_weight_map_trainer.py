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

"""WeightMapTrainer: the weight map reaches WeightedCrossEntropyLoss under its own key; the label stays the label."""

from __future__ import annotations

import copy
import inspect
import warnings

import numpy as np
import pytest
import torch

from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.transforms import Compose
from monai.utils import CommonKeys
from monai_unet2015.engines import WeightMapTrainer
from monai_unet2015.losses import WeightedCrossEntropyLoss
from monai_unet2015.networks.nets import UNet2015
from monai_unet2015.transforms import UNetWeightMapd

SIZE = 60  # valid input for the tiny net (depth 3, border 20): output 20 x 20
OUT = 20
CROP = slice((SIZE - OUT) // 2, (SIZE + OUT) // 2)


def make_items(count=4, seed=0):
    """Images with touching square 'cells' and their instance labels."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(count):
        lab = np.zeros((1, SIZE, SIZE), np.int32)
        k = 0
        for r in range(8, SIZE - 16, 14):
            for c in range(8, SIZE - 16, 12):
                k += 1
                lab[0, r : r + 12, c : c + 12] = k  # neighbours touch (12-px pitch along columns)
        image = (lab > 0).astype(np.float32) + 0.3 * rng.standard_normal(lab.shape).astype(np.float32)
        items.append({"image": image, "label": lab})
    return items


def make_loader(items, batch_size=2, weight_key="weight"):
    transform = Compose([UNetWeightMapd(keys="label", weight_key=weight_key)])
    return DataLoader(Dataset(items, transform=transform), batch_size=batch_size, shuffle=False, num_workers=0)


def tiny_net(state=None):
    net = UNet2015(features=(4, 8, 16), dropout=0.0)
    if state is not None:
        net.load_state_dict(state)
    return net


class RecordingLoss(WeightedCrossEntropyLoss):
    """WeightedCrossEntropyLoss that records the arguments of every call."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []

    def forward(self, *args):
        self.calls.append(tuple(a.detach().clone() for a in args))
        return super().forward(*args)


def make_trainer(net, loader, iterations=2, loss_function=None, trainer_class=WeightMapTrainer, **kwargs):
    return trainer_class(
        device=torch.device("cpu"),
        max_epochs=1,
        epoch_length=iterations,
        train_data_loader=loader,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=1e-2),
        loss_function=WeightedCrossEntropyLoss() if loss_function is None else loss_function,
        **kwargs,
    )


def run_losses(trainer):
    losses = []
    trainer.add_event_handler(IterationEvents.LOSS_COMPLETED, lambda e: losses.append(e.state.output["loss"].item()))
    trainer.run()
    return losses


def hand_weighted_ce(logits, label, weight):
    """Eq. 1 of the paper by hand: mean over pixels of -w(x) log softmax(logits)_l(x)(x), on the centre crop."""
    label = label[:, 0, CROP, CROP].long()
    weight = weight[:, 0, CROP, CROP].double()
    log_p = logits.double() - torch.logsumexp(logits.double(), dim=1, keepdim=True)
    picked = torch.stack([log_p[:, k] for k in range(logits.shape[1])], -1)
    picked = picked.gather(-1, label[..., None])[..., 0]
    return float((-weight * picked).sum() / picked.numel())


def test_state_output_label_is_the_label_and_the_weight_map_has_its_own_key():
    """Every iteration's engine.state.output holds the batch's image, label and weight map, each under its key."""
    torch.manual_seed(0)
    for weight_key in ("weight", "w"):
        loader = make_loader(make_items(4), weight_key=weight_key)
        trainer = make_trainer(tiny_net(), loader, weight_key=weight_key, decollate=False)
        seen = []

        @trainer.on(IterationEvents.MODEL_COMPLETED)
        def check(engine):
            batch, output = engine.state.batch, engine.state.output
            assert set(output) == {CommonKeys.IMAGE, CommonKeys.LABEL, CommonKeys.PRED, CommonKeys.LOSS, weight_key}
            assert output[CommonKeys.LABEL].shape == (2, 1, SIZE, SIZE)
            torch.testing.assert_close(output[CommonKeys.LABEL], batch["label"])
            torch.testing.assert_close(output[weight_key], batch[weight_key])
            torch.testing.assert_close(output[CommonKeys.IMAGE], batch["image"])
            assert float(output[weight_key].max()) > 1.0  # a real weight map, not ones
            seen.append(engine.state.iteration)

        trainer.run()
        assert seen == [1, 2]

    # decollated (the default, for postprocessing and metrics): every item holds its own label and weight map
    loader = make_loader(make_items(2))
    trainer = make_trainer(tiny_net(), loader, iterations=1)
    trainer.run()
    batch = next(iter(loader))
    assert len(trainer.state.output) == 2
    for i, item in enumerate(trainer.state.output):
        assert item[CommonKeys.LABEL].shape == item["weight"].shape == (1, SIZE, SIZE)
        torch.testing.assert_close(item[CommonKeys.LABEL], batch["label"][i])
        torch.testing.assert_close(item["weight"], batch["weight"][i])


def test_loss_receives_label_and_weight_map():
    loader = make_loader(make_items(4))
    batches = list(loader)
    loss_fn = RecordingLoss()
    trainer = make_trainer(tiny_net(), loader, loss_function=loss_fn)
    trainer.run()
    assert len(loss_fn.calls) == 2
    for (pred, label, weight), batch in zip(loss_fn.calls, batches):
        assert pred.shape == (2, 2, OUT, OUT)
        torch.testing.assert_close(label, batch["label"])
        torch.testing.assert_close(weight, batch["weight"])
    assert trainer.loss_function is loss_fn  # the wrapper lives only during an iteration


def test_trainer_iterations_use_the_weight_map():
    torch.manual_seed(0)
    net = tiny_net()
    loader = make_loader(make_items(4))
    first = next(iter(loader))

    # the first iteration's loss is the weighted loss of the untouched network on the first batch
    with torch.no_grad():
        logits = net(first["image"])
    assert logits.shape == (2, 2, OUT, OUT)
    expected = WeightedCrossEntropyLoss()(logits, first["label"], first["weight"]).item()
    assert expected == pytest.approx(hand_weighted_ce(logits, first["label"], first["weight"]), rel=1e-5)
    unweighted = WeightedCrossEntropyLoss()(logits, first["label"]).item()
    assert abs(expected - unweighted) > 1e-3  # the weight map matters for this batch

    before = copy.deepcopy(net.state_dict())
    losses = run_losses(make_trainer(net, loader, decollate=False))
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert losses[0] == pytest.approx(expected, rel=1e-5)
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())  # parameters were updated

    # scaling the weight map scales the loss: it really is the loss's weight map
    def scaled(scale):
        return [dict(b, weight=b["weight"] * scale) for b in loader]

    assert run_losses(make_trainer(tiny_net(before), scaled(3.0), iterations=1))[0] == pytest.approx(
        3 * expected, rel=1e-5
    )
    net3 = tiny_net(before)
    assert run_losses(make_trainer(net3, scaled(0.0), iterations=1))[0] == 0.0
    assert all(torch.equal(before[k], v) for k, v in net3.state_dict().items())  # zero weights: zero gradient


def _accumulation_kwargs():
    supported = "accumulation_steps" in inspect.signature(SupervisedTrainer.__init__).parameters
    return [{}, {"optim_set_to_none": True}] + ([{"accumulation_steps": 2}] if supported else [])


@pytest.mark.parametrize("kwargs", _accumulation_kwargs())
def test_without_weight_map_it_is_supervised_trainer(kwargs):
    """No weight map (option off, key missing, tuple batches) or a map of ones: SupervisedTrainer's results."""
    torch.manual_seed(0)
    init = tiny_net().state_dict()
    items = make_items(4)
    plain = [{"image": b["image"], "label": b["label"]} for b in make_loader(items)]  # carved labels, no map

    def run(trainer_class, loader, loss_function=None, **extra):
        net = tiny_net(init)
        trainer = make_trainer(
            net, loader, loss_function=loss_function, trainer_class=trainer_class, decollate=False, **kwargs, **extra
        )
        return run_losses(trainer), net.state_dict(), trainer

    ref_losses, ref_state, _ = run(SupervisedTrainer, plain)
    ones = [dict(b, weight=torch.ones_like(b["label"], dtype=torch.float32)) for b in plain]
    tuples = [(b["image"], b["label"]) for b in plain]
    for loader, extra in ((plain, {}), (ones, {"weight_key": None}), (ones, {}), (tuples, {})):
        loss_fn = RecordingLoss()
        losses, state, trainer = run(WeightMapTrainer, loader, loss_function=loss_fn, **extra)
        assert losses == pytest.approx(ref_losses, rel=1e-6)
        for k, v in state.items():
            torch.testing.assert_close(v, ref_state[k], rtol=1e-5, atol=1e-7)
        with_map = loader is ones and extra.get("weight_key", "weight") is not None
        assert all(len(call) == (3 if with_map else 2) for call in loss_fn.calls)
        assert ("weight" in trainer.state.output) is with_map


def test_events_and_amp_path():
    """The iteration events fire once each, in SupervisedTrainer's order; the amp branch works (on the CPU
    torch disables cuda autocast and the grad scaler, so it gives the fp32 result)."""
    torch.manual_seed(0)
    init = tiny_net().state_dict()
    loader = make_loader(make_items(2))
    order = []
    trainer = make_trainer(tiny_net(init), loader, iterations=1, decollate=False)  # MODEL_COMPLETED decollates
    for event in (
        IterationEvents.FORWARD_COMPLETED,
        IterationEvents.LOSS_COMPLETED,
        IterationEvents.BACKWARD_COMPLETED,
        IterationEvents.MODEL_COMPLETED,
    ):
        trainer.add_event_handler(event, lambda e, name=event.name: order.append((name, "weight" in e.state.output)))
    reference = run_losses(trainer)
    assert order == [
        ("FORWARD_COMPLETED", False),
        ("LOSS_COMPLETED", True),
        ("BACKWARD_COMPLETED", True),
        ("MODEL_COMPLETED", True),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        amp_trainer = make_trainer(tiny_net(init), loader, iterations=1, amp=True)
        assert run_losses(amp_trainer) == pytest.approx(reference, rel=1e-6)
    assert "weight" in amp_trainer.state.output[0]


def test_clear_errors():
    with pytest.raises(ValueError, match=r"weight_key 'label'.*'image', 'label', 'pred', 'loss'"):
        make_trainer(tiny_net(), [], weight_key="label")
    with pytest.raises(TypeError, match="weight_key must be a string"):
        make_trainer(tiny_net(), [], weight_key=3)
    batch = {"image": torch.zeros(1, 1, SIZE, SIZE), "label": torch.zeros(1, 1, SIZE, SIZE)}
    loss_fn = WeightedCrossEntropyLoss()
    trainer = make_trainer(tiny_net(), [{**batch, "weight": np.ones((1, 1, SIZE, SIZE))}], 1, loss_function=loss_fn)
    with pytest.raises(TypeError, match="'weight'"):
        trainer.run()
    trainer = make_trainer(tiny_net(), [{**batch, "weight": torch.ones(1, 1, SIZE, SIZE - 1)}], 1, loss_fn)
    with pytest.raises(ValueError, match="weight_map"):
        trainer.run()
    assert trainer.loss_function is loss_fn  # restored after a failed iteration


@pytest.mark.parametrize("weight_key", ["weight", None])
def test_bundle_config_needs_no_custom_code(weight_key):
    """The documented train.json lines, parsed by MONAI's ConfigParser, train the tiny network."""
    config = {
        "device": "$torch.device('cpu')",
        "network_def": {
            "_target_": "monai_unet2015.networks.nets.UNet2015",
            "features": [4, 8, 16],
            "dropout": 0.0,
        },
        "network": "@network_def",
        "train_transforms": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "monai_unet2015.transforms.UNetWeightMapd", "keys": "label", "weight_key": "weight"}
            ],
        },
        "dataset": {"_target_": "Dataset", "data": "@train_items", "transform": "@train_transforms"},
        "loader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 2, "num_workers": 0},
        "optimizer": {"_target_": "torch.optim.Adam", "params": "$@network.parameters()", "lr": 1e-3},
        "loss": {"_target_": "monai_unet2015.losses.WeightedCrossEntropyLoss"},
        "trainer": {
            "_target_": "monai_unet2015.engines.WeightMapTrainer",
            "weight_key": weight_key,
            "device": "@device",
            "max_epochs": 1,
            "train_data_loader": "@loader",
            "network": "@network",
            "optimizer": "@optimizer",
            "loss_function": "@loss",
        },
    }
    parser = ConfigParser(config)
    parser["train_items"] = make_items(4)
    trainer = parser.get_parsed_content("trainer")
    assert isinstance(trainer, SupervisedTrainer)
    trainer.run()
    assert trainer.state.iteration == 2
    item = trainer.state.output[0]
    assert np.isfinite(float(item[CommonKeys.LOSS]))
    # the label seen by postprocessing/metrics is the label; the weight map has its own key
    assert item[CommonKeys.LABEL].shape == (1, SIZE, SIZE)
    assert set(np.unique(item[CommonKeys.LABEL].numpy())) <= {0, 1}
    assert ("weight" in item) is (weight_key is not None)
    if weight_key is not None:
        assert item["weight"].shape == (1, SIZE, SIZE)

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

"""PrepareBatchWeightMap: the weight map reaches WeightedCrossEntropyLoss inside SupervisedTrainer."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.transforms import Compose
from monai.utils import CommonKeys
from monai_unet2015.engines import PrepareBatchWeightMap
from monai_unet2015.losses import WeightedCrossEntropyLoss
from monai_unet2015.networks.nets import UNet2015
from monai_unet2015.transforms import UNetWeightMapd

SIZE = 60  # valid input for the tiny net (depth 3, border 20): output 20 x 20


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


def make_loader(items, batch_size=2):
    transform = Compose([UNetWeightMapd(keys="label", weight_key="weight")])
    return DataLoader(Dataset(items, transform=transform), batch_size=batch_size, shuffle=False, num_workers=0)


def test_packs_weight_map_into_target():
    batch = next(iter(make_loader(make_items(2))))
    image, target = PrepareBatchWeightMap()(batch, device="cpu")
    assert image.shape == (2, 1, SIZE, SIZE)
    assert target.shape == (2, 2, SIZE, SIZE) and target.dtype == torch.float32
    torch.testing.assert_close(target[:, :1], batch["label"].float())
    torch.testing.assert_close(target[:, 1:], batch["weight"].float())
    # non-default keys
    renamed = {"x": batch["image"], "y": batch["label"], "w": batch["weight"]}
    image2, target2 = PrepareBatchWeightMap(weight_key="w", image_key="x", label_key="y")(renamed)
    torch.testing.assert_close(torch.as_tensor(target2), torch.as_tensor(target))


def test_clear_errors():
    batch = {"image": torch.zeros(1, 1, 4, 4), "label": torch.zeros(1, 1, 4, 4)}
    with pytest.raises(KeyError, match="weight"):
        PrepareBatchWeightMap()(batch)
    with pytest.raises(TypeError, match="dictionary"):
        PrepareBatchWeightMap()((batch["image"], batch["label"]))
    with pytest.raises(ValueError, match="weight_map"):
        PrepareBatchWeightMap()({**batch, "weight": torch.ones(1, 1, 4, 5)})


def _run_trainer(net, loader, weight_scale=1.0, iterations=2):
    def scaled_prepare(batchdata, device=None, non_blocking=False, **kwargs):
        batchdata = dict(batchdata)
        batchdata["weight"] = batchdata["weight"] * weight_scale
        return PrepareBatchWeightMap()(batchdata, device, non_blocking, **kwargs)

    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        epoch_length=iterations,
        train_data_loader=loader,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=1e-2),
        loss_function=WeightedCrossEntropyLoss(weight_map_in_target=True),
        prepare_batch=scaled_prepare,
        decollate=False,
    )
    losses = []
    trainer.add_event_handler(IterationEvents.LOSS_COMPLETED, lambda e: losses.append(e.state.output["loss"].item()))
    trainer.run()
    return losses


def test_supervised_trainer_iterations_use_the_weight_map():
    torch.manual_seed(0)
    net = UNet2015(features=(4, 8, 16), dropout=0.0)
    loader = make_loader(make_items(4))
    first = next(iter(loader))

    # the first iteration's loss is the weighted loss of the untouched network on the first batch
    with torch.no_grad():
        logits = net(first["image"])
    assert logits.shape == (2, 2, 20, 20)
    expected = WeightedCrossEntropyLoss()(logits, first["label"], first["weight"]).item()
    unweighted = WeightedCrossEntropyLoss()(logits, first["label"]).item()
    assert abs(expected - unweighted) > 1e-3  # the weight map matters for this batch

    before = copy.deepcopy(net.state_dict())
    losses = _run_trainer(net, loader)
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert losses[0] == pytest.approx(expected, rel=1e-5)
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())  # parameters were updated

    # scaling the weight map scales the loss: it really is the loss's weight map
    net2 = UNet2015(features=(4, 8, 16), dropout=0.0)
    net2.load_state_dict(before)
    assert _run_trainer(net2, loader, weight_scale=3.0, iterations=1)[0] == pytest.approx(3 * expected, rel=1e-5)
    net3 = UNet2015(features=(4, 8, 16), dropout=0.0)
    net3.load_state_dict(before)
    assert _run_trainer(net3, loader, weight_scale=0.0, iterations=1)[0] == 0.0
    assert all(torch.equal(before[k], v) for k, v in net3.state_dict().items())  # zero weights: zero gradient


def test_bundle_config_needs_no_custom_code():
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
        "loss": {"_target_": "monai_unet2015.losses.WeightedCrossEntropyLoss", "weight_map_in_target": True},
        "prepare_batch": {"_target_": "monai_unet2015.engines.PrepareBatchWeightMap", "weight_key": "weight"},
        "trainer": {
            "_target_": "SupervisedTrainer",
            "device": "@device",
            "max_epochs": 1,
            "train_data_loader": "@loader",
            "network": "@network",
            "optimizer": "@optimizer",
            "loss_function": "@loss",
            "prepare_batch": "@prepare_batch",
        },
    }
    parser = ConfigParser(config)
    parser["train_items"] = make_items(4)
    trainer = parser.get_parsed_content("trainer")
    trainer.run()
    assert trainer.state.iteration == 2
    assert np.isfinite(float(trainer.state.output[0][CommonKeys.LOSS]))
    # the label seen by postprocessing/metrics is the packed target: label channel + weight channel
    assert trainer.state.output[0][CommonKeys.LABEL].shape[0] == 2

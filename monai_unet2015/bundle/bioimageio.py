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

"""Export of a bundle as a bioimage.io model package (spec format 0.5), for Fiji/deepImageJ, ilastik and napari.

Command line (needs the ``bioimageio`` extra: ``pip install "monai-unet2015[bioimageio]"``; no network)::

    python -m monai_unet2015.bundle.bioimageio bundles/unet2015_em_membranes dist/unet2015_em_membranes.zip
    python -m monai_unet2015.bundle.bioimageio bundles/unet2015_dic_hela dist/unet2015_dic_hela --test

``OUT`` ending in ``.zip`` gives the zip that deepImageJ and ilastik import and the bioimage.io upload takes;
any other ``OUT`` gives the same package as a folder (``OUT/rdf.yaml`` beside its files). ``OUT`` must not
exist: the package is written into a temporary sibling and renamed at the end, so that a failed export leaves
nothing behind. The package holds:

- ``rdf.yaml``: the description, validated with ``bioimageio.spec`` before anything is written;
- weights in two formats: TorchScript (self-contained, what deepImageJ runs) and ``pytorch_state_dict``
  (the bundle's weights, architecture :py:class:`UNet2015Probabilities` of this module);
- ``test_input.npy`` / ``test_output.npy``: the centre of the bundle's sample cropped to the largest valid
  size (508 for the 512 x 512 samples) and what the bundle's own normalisation and network make of it;
- a cover (the crop beside the bundle's probability channel), ``README.md`` and the bundle's licence files.

The exported network outputs **probabilities** (softmax over the 2 classes), in the image's own axis order
``(batch, channel, y, x)``; the bundle's normalisation becomes the spec's ``scale_range`` (min-max, 0-100th
percentile) or ``zero_mean_unit_variance`` preprocessing. Valid padding is described as the spec describes
it: input sizes ``188 + 16 n`` per spatial axis (``ParameterizedSize(min=188, step=16)``), output size
``input - 184`` (``SizeReference`` with ``offset = -184``: the 92 px halo each side that the model crops
itself). See ``docs/bioimageio.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn as nn

from monai_unet2015.networks.nets.unet2015 import UNet2015, unet2015_border, unet2015_nearest_valid_sizes

from .checkpoint import read_state_dict, unet2015_args_from_state_dict
from .errors import BundleInputError
from .evaluation import bundle_parser

__all__ = [
    "UNet2015Probabilities",
    "BundleExportInfo",
    "read_bundle_export_info",
    "export_bioimageio",
    "main",
    "SPEC_FORMAT_VERSION",
]

#: the bioimage.io model spec format version written
SPEC_FORMAT_VERSION = "0.5"
#: DOIs of the references the bundles cite, by first author (the spec wants a DOI or a URL for every citation;
#: a DOI needs no network to validate)
KNOWN_DOIS = {
    "Ronneberger": "10.1007/978-3-319-24574-4_28",
    "Cardona": "10.1371/journal.pbio.1000502",
    "Arganda-Carreras": "10.3389/fnana.2015.00142",
    "Maska": "10.1093/bioinformatics/btu080",
    "Ulman": "10.1038/nmeth.4473",
}
_INPUT_ID, _OUTPUT_ID = "raw", "probabilities"
_MODULE = "monai_unet2015.bundle.bioimageio"  # not __name__: that is "__main__" under ``python -m``
_SUPPORTED_NORMALISATION = ("ScaleIntensityd (minv=0, maxv=1)", "NormalizeIntensityd (defaults)")


class UNet2015Probabilities(nn.Module):
    """:py:class:`~monai_unet2015.networks.nets.UNet2015` with a softmax, on ``(batch, channel, y, x)`` arrays.

    The network of a bundle as the bioimage.io package runs it: the input in the axis order of the image
    file (``y`` before ``x``; MONAI's loaders give the bundles ``(channel, x, y)``, so the spatial axes are
    swapped before and after the network, and the result equals the bundle's on the same image) and class
    probabilities out (softmax over the channels). Its state dict is the UNet's under ``unet.``. TorchScript
    scriptable.

    Args:
        spatial_dims: must be 2.
        in_channels, out_channels, features, dropout: as :py:class:`~monai_unet2015.networks.nets.UNet2015`.

    Examples::

        >>> import torch
        >>> net = UNet2015Probabilities(features=(4, 8, 16), dropout=0.0).eval()
        >>> p = net(torch.rand(1, 1, 60, 60))
        >>> tuple(p.shape), bool(torch.allclose(p.sum(1), torch.ones(1, 20, 20)))
        ((1, 2, 20, 20), True)
        >>> sorted(net.state_dict())[0]
        'unet.conv_0.conv_0.conv.bias'
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 2,
        features: Sequence[int] = (64, 128, 256, 512, 1024),
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(f"spatial_dims must be 2 (the bundles are 2D), got {spatial_dims}.")
        self.unet = UNet2015(spatial_dims, in_channels, out_channels, features, dropout, init=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.unet(x.transpose(-1, -2))
        return torch.softmax(logits, dim=1).transpose(-1, -2)


class BundleExportInfo(NamedTuple):
    """What a bioimage.io export takes from a bundle, checked (see :py:func:`read_bundle_export_info`).

    Attributes:
        root: the bundle folder.
        metadata: ``configs/metadata.json``.
        net_args: ``spatial_dims``, ``in_channels``, ``out_channels``, ``features``, ``dropout`` of ``network_def``.
        state: the network state dict of ``models/model.pt``.
        normalisation: ``"scale_range"`` or ``"zero_mean_unit_variance"``.
        threshold: the bundle's mask threshold.
        channel: the output channel the bundle writes as its probability (``NAME_prob.tif``).
        channel_names: names of the output channels (from ``network_data_format``).
        sample: the sample image the test tensors come from.
    """

    root: Path
    metadata: dict
    net_args: dict
    state: dict
    normalisation: str
    threshold: float
    channel: int
    channel_names: list[str]
    sample: Path


def _normalisation_op(config: Any) -> str:
    target = str(config.get("_target_", "")) if isinstance(config, dict) else repr(config)
    name = target.rsplit(".", 1)[-1]
    extra = {k: v for k, v in config.items() if k not in ("_target_", "keys")} if isinstance(config, dict) else {}
    if name == "ScaleIntensityd" and float(extra.pop("minv", 0.0)) == 0.0 and float(extra.pop("maxv", 1.0)) == 1.0:
        if not extra:
            return "scale_range"
    if name == "NormalizeIntensityd" and not extra:
        return "zero_mean_unit_variance"
    raise BundleInputError(
        f"inference.json 'normalisation' is {config!r}: the bioimage.io export maps only "
        f"{' and '.join(_SUPPORTED_NORMALISATION)} to the spec's preprocessing."
    )


def _written_channel(config: Any) -> int:
    """The channel the bundle's postprocessing copies to ``prob`` (``Lambdad`` on ``prob`` with ``x[i:i+1]``)."""
    transforms = config.get("transforms", []) if isinstance(config, dict) else []
    for t in transforms:
        if isinstance(t, dict) and str(t.get("_target_", "")).endswith("Lambdad") and t.get("keys") == "prob":
            m = re.search(r"x\[(\d+):(\d+)\]", str(t.get("func", "")))
            if m and int(m.group(2)) == int(m.group(1)) + 1:
                return int(m.group(1))
    raise BundleInputError(
        "inference.json 'postprocessing' has no Lambdad on 'prob' selecting one channel (func '$lambda x: x[i:i+1]'): "
        "the export cannot tell which output channel the bundle writes as its probability."
    )


def read_bundle_export_info(bundle_dir: str | Path) -> BundleExportInfo:
    """Read and check what the export needs from a bundle, before anything is computed or written.

    Raises :py:class:`~monai_unet2015.bundle.errors.BundleInputError` for a folder that is not a bundle, a
    bundle without weights (``models/model.pt``), weights of another width than the ``features`` of
    ``configs/inference.json``, a normalisation the spec cannot express, or a bundle without a sample image.
    """
    root = Path(bundle_dir).resolve()
    for f in ("configs/inference.json", "configs/metadata.json"):
        if not (root / f).is_file():
            raise BundleInputError(f"BUNDLE {str(bundle_dir)!r} is not a bundle: {f} is missing.")
    ckpt = root / "models" / "model.pt"
    if not ckpt.is_file():
        raise BundleInputError(
            f"BUNDLE {str(bundle_dir)!r} has no weights: {ckpt} is missing. Train the bundle "
            "(configs/train.json) and promote runs/<run>/model.pt to models/model.pt, or fetch the weights "
            "listed in its large_files.yml."
        )
    metadata = json.loads((root / "configs" / "metadata.json").read_text())
    parser = bundle_parser(root)
    net_cfg = parser.get("network_def")
    if not isinstance(net_cfg, dict) or not str(net_cfg.get("_target_", "")).endswith("UNet2015"):
        raise BundleInputError(f"{root}/configs/inference.json: 'network_def' is not a UNet2015, got {net_cfg!r}.")
    net_args = {
        "spatial_dims": int(parser.get_parsed_content("network_def#spatial_dims")),
        "in_channels": int(parser.get_parsed_content("network_def#in_channels")),
        "out_channels": int(parser.get_parsed_content("network_def#out_channels")),
        "features": [int(f) for f in parser.get_parsed_content("network_def#features")],
        "dropout": float(parser.get_parsed_content("network_def#dropout")) if "dropout" in net_cfg else 0.5,
    }
    if net_args["spatial_dims"] != 2 or net_args["in_channels"] != 1:
        raise BundleInputError(
            f"{root}/configs/inference.json: the export handles 2D single-channel networks, got "
            f"spatial_dims {net_args['spatial_dims']}, in_channels {net_args['in_channels']}."
        )
    state = read_state_dict(ckpt, key="ckpt_path")
    got = unet2015_args_from_state_dict(state)
    diff = [k for k in ("spatial_dims", "in_channels", "out_channels", "features") if got[k] != net_args[k]]
    if diff:
        said = ", ".join(f"{k} {net_args[k]} in configs/inference.json but {got[k]} in models/model.pt" for k in diff)
        raise BundleInputError(
            f"BUNDLE {str(bundle_dir)!r}: the weights do not match the network: {said}. Set 'features' in "
            f"configs/inference.json to {got['features']} or ship weights of the configured width."
        )
    normalisation = _normalisation_op(parser.get("normalisation"))
    channel = _written_channel(parser.get("postprocessing"))
    channel_def = metadata.get("network_data_format", {}).get("outputs", {}).get("pred", {}).get("channel_def", {})
    channel_names = [str(channel_def.get(str(c), f"class {c}")) for c in range(net_args["out_channels"])]
    samples = sorted(p for p in (root / "sample").glob("*") if p.is_file()) if (root / "sample").is_dir() else []
    if not samples:
        raise BundleInputError(
            f"BUNDLE {str(bundle_dir)!r} has no sample image in sample/: the package's test tensors are made from it."
        )
    return BundleExportInfo(
        root, metadata, net_args, state, normalisation, float(parser.get_parsed_content("threshold")), channel,
        channel_names, samples[0],
    )


def _check_out(out: str | Path) -> Path:
    path = Path(out)
    if path.exists() or path.is_symlink():
        raise BundleInputError(f"OUT {str(out)!r} exists: give a new path (the export never overwrites).")
    if not path.parent.is_dir():
        raise BundleInputError(f"OUT {str(out)!r}: its folder {str(path.parent)!r} does not exist.")
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _test_tensors(info: BundleExportInfo) -> tuple[Any, Any, torch.nn.Module]:
    """The crop of the sample, the bundle's probabilities for it, and the exported module (float32, eval)."""
    import numpy as np

    from monai_unet2015.data import LoadSliced

    parser = bundle_parser(info.root)
    image = LoadSliced("image")({"image": str(info.sample)})["image"]  # (1, X, Y), as the bundle loads it
    if image.shape[0] != 1:
        raise BundleInputError(f"sample {info.sample} has {image.shape[0]} channels; the bundles segment grey images.")
    depth = len(info.net_args["features"])
    size = unet2015_nearest_valid_sizes(min(image.shape[1:]), depth)[0]
    if size > min(image.shape[1:]) or size <= 0:
        raise BundleInputError(f"sample {info.sample} ({tuple(image.shape[1:])}) is smaller than the smallest valid tile.")
    x0, y0 = (image.shape[1] - size) // 2, (image.shape[2] - size) // 2
    crop = torch.as_tensor(np.asarray(image[:, x0 : x0 + size, y0 : y0 + size]), dtype=torch.float32)
    normalised = parser.get_parsed_content("normalisation")({"image": crop.clone()})["image"]
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(info.state)
    network = network.float().eval()
    with torch.no_grad():
        prob = torch.softmax(network(torch.as_tensor(np.asarray(normalised), dtype=torch.float32)[None]), dim=1)
    module = UNet2015Probabilities(**info.net_args)
    module.unet.load_state_dict(network.state_dict())
    module = module.float().eval()
    test_input = crop.transpose(-1, -2)[None].numpy().astype(np.float32)  # (1, 1, y, x)
    test_output = prob.transpose(-1, -2).numpy().astype(np.float32)  # (1, C, y, x)
    return test_input, test_output, module


def _cover(path: Path, test_input: Any, test_output: Any, channel: int, border: int) -> None:
    """The input (its centre, the output's field of view) beside the probability channel the bundle writes: 2:1."""
    import numpy as np
    from PIL import Image

    img = test_input[0, 0, border:-border, border:-border]
    lo, hi = float(img.min()), float(img.max())
    grey = ((img - lo) / (hi - lo if hi > lo else 1.0) * 255).round().astype(np.uint8)
    prob = (np.clip(test_output[0, channel], 0, 1) * 255).round().astype(np.uint8)
    Image.fromarray(np.concatenate([grey, prob], axis=1)).convert("RGB").save(path)


def _doc(info: BundleExportInfo, size_in: int, size_out: int) -> str:
    meta, depth = info.metadata, len(info.net_args["features"])
    border, step = unet2015_border(depth), 2 ** (depth - 1)
    smallest = unet2015_nearest_valid_sizes(1, depth)[1]
    names = ", ".join(f"{c} = {n}" for c, n in enumerate(info.channel_names))
    fg = info.channel_names[info.channel]
    refs = "\n".join(f"- {r}" for r in meta.get("references", []))
    metrics = ", ".join(f"{k} {v}" for k, v in meta.get("eval_metrics", {}).items()) or "none stated"
    return f"""# {meta.get('name', info.root.name)}

{meta.get('description', '')}

Exported from the MONAI bundle `{info.root.name}` (version {meta.get('version', '?')}) by
`python -m monai_unet2015.bundle.bioimageio`.

## Input

One grey channel, float32, axes `(batch, channel, y, x)`: the raw image. The package's preprocessing does the
bundle's normalisation: {'each image scaled to [0, 1] by its minimum and maximum (`scale_range`, percentiles 0 and 100)' if info.normalisation == 'scale_range' else 'each image standardised to zero mean and unit variance (`zero_mean_unit_variance`)'}.

Valid padding: every spatial length must be `{smallest} + {step} n` (n = 0, 1, ...: {smallest}, {smallest + step}, ...,
{size_in}, ...), and the output is `{2 * border}` pixels smaller (`input - {2 * border}`): the network consumes
{border} pixels of context on each side, so output pixel (0, 0) lies over input pixel ({border}, {border}). To
segment a whole image, mirror-pad it by {border} pixels on each side and tile it with tiles of a valid size whose
outputs abut (tiles overlap by {2 * border} pixels); the bundle does exactly this (overlap-tile, 388-pixel output
tiles).

## Output

`probabilities`: {info.net_args['out_channels']} channels, float32 in [0, 1], summing to 1 (softmax): {names}.
The bundle writes channel {info.channel} ({fg}) as its probability map and thresholds it at **{info.threshold}**
(`probability >= {info.threshold}`) for its mask.

## Test data

`test_input.npy`: the centre {size_in} x {size_in} of the bundle's sample `{info.sample.name}` (raw values);
`test_output.npy`: the bundle's own normalisation and network applied to it ({size_out} x {size_out}).

## Validation

The bundle's figures on its held-out validation data (`eval_metrics` of its `configs/metadata.json`; see the
bundle's README for the protocol and caveats): {metrics}.

## References

{refs}

## Licence

Weights and code: {meta.get('license', 'Apache-2.0')} (`LICENSE`). The test image is third-party data: see
`data_license.txt`.
"""


def _environment_yaml(torch_version: str) -> str:
    import monai

    from monai_unet2015 import __version__ as version

    return (
        "name: monai-unet2015\nchannels:\n  - pytorch\n  - conda-forge\n  - nodefaults\ndependencies:\n"
        f"  - python>=3.10\n  - pytorch=={torch_version}\n  - pip\n  - pip:\n      - monai=={monai.__version__}\n"
        f"      - monai-unet2015=={version}\n"
    )


def _build_description(info: BundleExportInfo, staging: Path) -> Any:
    """Write the package's files into ``staging`` and return their validated ``ModelDescr``."""
    import numpy as np
    from bioimageio.spec import ValidationContext
    from bioimageio.spec.model import v0_5 as spec

    test_input, test_output, module = _test_tensors(info)
    depth = len(info.net_args["features"])
    border, step = unet2015_border(depth), 2 ** (depth - 1)
    smallest = unet2015_nearest_valid_sizes(1, depth)[1]
    np.save(staging / "test_input.npy", test_input)
    np.save(staging / "test_output.npy", test_output)
    import tifffile

    tifffile.imwrite(staging / "sample_input.tif", test_input)  # the same arrays, for viewers (FAIR: sample_tensor)
    tifffile.imwrite(staging / "sample_output.tif", test_output)
    torch_version = torch.__version__.split("+")[0]
    state = {f"unet.{k}": v for k, v in info.state.items()}  # the bundle's tensors, dtype kept (float16)
    torch.save(state, staging / "weights.pt")
    scripted = torch.jit.script(module)
    scripted.save(str(staging / "weights_torchscript.pt"))
    _cover(staging / "cover.png", test_input, test_output, info.channel, border)
    (staging / "README.md").write_text(_doc(info, test_input.shape[-1], test_output.shape[-1]))
    (staging / "environment.yaml").write_text(_environment_yaml(torch_version))
    attachments = []
    for src, name in ((info.root / "LICENSE", "LICENSE"), (info.root / "docs" / "data_license.txt", "data_license.txt")):
        if src.is_file():
            shutil.copyfile(src, staging / name)
            attachments.append(spec.FileDescr(source=staging / name))

    meta = info.metadata
    cite = []
    for ref in meta.get("references", []):
        doi = next((d for a, d in KNOWN_DOIS.items() if ref.startswith(a)), None)
        if doi is None:
            raise BundleInputError(
                f"metadata.json reference {ref[:60]!r}...: no DOI known for it (KNOWN_DOIS in {__name__}); "
                "the bioimage.io spec needs a DOI or URL for every citation."
            )
        cite.append(spec.CiteEntry(text=ref[:1000], doi=spec.Doi(doi)))
    spatial_in = [
        spec.SpaceInputAxis(id=spec.AxisId(a), size=spec.ParameterizedSize(min=smallest, step=step)) for a in ("y", "x")
    ]
    spatial_out = [
        spec.SpaceOutputAxis(
            id=spec.AxisId(a),
            size=spec.SizeReference(tensor_id=spec.TensorId(_INPUT_ID), axis_id=spec.AxisId(a), offset=-2 * border),
        )
        for a in ("y", "x")
    ]
    axes_kw = [spec.AxisId("y"), spec.AxisId("x")]
    if info.normalisation == "scale_range":
        pre = [spec.ScaleRangeDescr(kwargs=spec.ScaleRangeKwargs(axes=axes_kw, min_percentile=0.0, max_percentile=100.0))]
    else:
        pre = [spec.ZeroMeanUnitVarianceDescr(kwargs=spec.ZeroMeanUnitVarianceKwargs(axes=axes_kw))]
    modality = meta.get("network_data_format", {}).get("inputs", {}).get("image", {}).get("modality", "")
    tags = ["unet", "unet2015", "semantic-segmentation", "2d", "pytorch", "monai", "valid-padding", info.root.name]
    tags += [_slug(modality)] if modality else []
    with ValidationContext(root=staging, perform_io_checks=True):
        descr = spec.ModelDescr(
            name=str(meta.get("name", info.root.name))[:128],
            description=(
                f"{meta.get('task', '')}. The 2015 U-Net (Ronneberger et al.) with valid padding, width "
                f"{info.net_args['features']}; outputs softmax probabilities of {len(info.channel_names)} classes "
                f"({', '.join(info.channel_names)}); the bundle thresholds channel {info.channel} at {info.threshold}."
            )[:1024],
            authors=[spec.Author(name=str(meta.get("authors", "monai_unet2015 contributors")))],
            cite=cite,
            license=spec.LicenseId("Apache-2.0"),
            tags=tags,
            version=str(meta.get("version", "0.1.0")),
            documentation=spec.FileDescr(source=staging / "README.md"),
            covers=[spec.FileDescr(source=staging / "cover.png")],
            attachments=attachments,
            inputs=[
                spec.InputTensorDescr(
                    id=spec.TensorId(_INPUT_ID),
                    description="raw grey image; normalised by the preprocessing",
                    axes=[spec.BatchAxis(), spec.ChannelAxis(channel_names=[spec.Identifier("raw")]), *spatial_in],
                    test_tensor=spec.FileDescr(source=staging / "test_input.npy"),
                    sample_tensor=spec.FileDescr(source=staging / "sample_input.tif"),
                    preprocessing=pre,
                )
            ],
            outputs=[
                spec.OutputTensorDescr(
                    id=spec.TensorId(_OUTPUT_ID),
                    description=f"softmax probabilities; {2 * border} px smaller than the input ({border} px each side)",
                    axes=[
                        spec.BatchAxis(),
                        spec.ChannelAxis(channel_names=[spec.Identifier(_slug(n).replace("-", "_")) for n in info.channel_names]),
                        *spatial_out,
                    ],
                    test_tensor=spec.FileDescr(source=staging / "test_output.npy"),
                    sample_tensor=spec.FileDescr(source=staging / "sample_output.tif"),
                    data=spec.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
                )
            ],
            weights=spec.WeightsDescr(
                pytorch_state_dict=spec.PytorchStateDictWeightsDescr(
                    source=staging / "weights.pt",
                    architecture=spec.ArchitectureFromLibraryDescr(
                        import_from=_MODULE, callable=spec.Identifier(UNet2015Probabilities.__name__),
                        kwargs=dict(info.net_args),
                    ),
                    pytorch_version=spec.Version(torch_version),
                    dependencies=spec.FileDescr(source=staging / "environment.yaml"),
                ),
                torchscript=spec.TorchscriptWeightsDescr(
                    source=staging / "weights_torchscript.pt",
                    pytorch_version=spec.Version(torch_version),
                    parent="pytorch_state_dict",
                ),
            ),
            config=spec.Config(
                **{
                    "monai_unet2015": {
                        "bundle": info.root.name,
                        "bundle_version": str(meta.get("version", "")),
                        "threshold": info.threshold,
                        "probability_channel": info.channel,
                        "valid_input_size": f"{smallest} + {step} n",
                        "border": border,
                    }
                }
            ),
        )
    return descr


def _summary_text(summary: Any) -> str:
    try:
        return summary.format()
    except Exception:  # older/newer summaries: the status and the failed details suffice
        return f"{summary.status}: " + "; ".join(
            f"{d.name}: {[e.msg for e in d.errors]}" for d in summary.details if d.status == "failed"
        )


def export_bioimageio(bundle_dir: str | Path, out: str | Path, test: bool = False) -> Path:
    """Export ``bundle_dir`` as a bioimage.io model package at ``out`` (a ``.zip``, or a folder otherwise).

    The bundle and ``out`` are checked first (:py:func:`read_bundle_export_info`; ``out`` must not exist and its
    folder must); the package is built in a temporary folder, validated with ``bioimageio.spec`` (and, with
    ``test``, tested with ``bioimageio.core.test_model``: both weight formats reproduce the test output and
    run on the valid sizes), written to a temporary sibling of ``out`` and renamed to ``out``. Whatever fails,
    nothing is left behind.

    Args:
        bundle_dir: the bundle folder.
        out: the package to write: ``NAME.zip`` or a folder path.
        test: also run ``bioimageio.core``'s model test before writing (about 20 s on 2 CPU cores).

    Returns:
        ``out``.

    Raises:
        BundleInputError: bad bundle or ``out`` (see above), or a package that fails validation / the test.
        ImportError: ``bioimageio.spec`` (and for ``test`` ``bioimageio.core``) not installed.
    """
    path = _check_out(out)
    info = read_bundle_export_info(bundle_dir)
    try:
        import bioimageio.spec as bspec
    except ImportError as e:
        raise ImportError(
            "the bioimage.io export needs bioimageio.spec and bioimageio.core: pip install 'monai-unet2015[bioimageio]'"
        ) from e
    staging = Path(tempfile.mkdtemp(prefix=".bioimageio-staging-"))
    partial = path.parent / f".{path.name}.partial-{os.getpid()}"
    try:
        try:
            descr = _build_description(info, staging)
        except ValueError as e:  # pydantic's ValidationError is a ValueError
            if isinstance(e, BundleInputError):
                raise
            raise BundleInputError(f"the package description fails bioimageio.spec validation: {e}") from e
        if test:
            from bioimageio.core import test_model

            summary = test_model(descr)
            if summary.status not in ("passed", "valid-format"):
                raise BundleInputError(f"the exported package fails bioimageio.core's test:\n{_summary_text(summary)}")
        if path.suffix.lower() == ".zip":
            bspec.save_bioimageio_package(descr, output_path=partial)
        else:
            bspec.save_bioimageio_package_as_folder(descr, output_path=partial)
        reloaded = bspec.load_description(partial, perform_io_checks=True)
        if not isinstance(reloaded, bspec.model.v0_5.ModelDescr):
            raise BundleInputError(
                f"the written package fails bioimageio.spec validation:\n{_summary_text(reloaded.validation_summary)}"
            )
        if path.exists() or path.is_symlink():
            raise BundleInputError(f"OUT {str(out)!r} appeared while exporting: not overwritten.")
        os.rename(partial, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        elif partial.exists():
            partial.unlink()
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m monai_unet2015.bundle.bioimageio BUNDLE OUT [--test]``."""
    parser = argparse.ArgumentParser(
        prog="python -m monai_unet2015.bundle.bioimageio",
        description="Export a bundle as a bioimage.io model package (spec 0.5) for Fiji/deepImageJ, ilastik, napari.",
    )
    parser.add_argument("bundle", help="the bundle folder, e.g. bundles/unet2015_em_membranes")
    parser.add_argument("out", help="the package to write: NAME.zip, or a folder path; must not exist")
    parser.add_argument("--test", action="store_true", help="also run bioimageio.core's model test before writing")
    args = parser.parse_args(argv)
    try:
        out = export_bioimageio(args.bundle, args.out, test=args.test)
    except (BundleInputError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

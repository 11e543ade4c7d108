"""Export an adapted classifier as one ``torch.export`` program that needs only torch to run.

The program (``torch.export.save``; load it with ``torch.export.load(path).module()``) maps
images ``[N, C, H, W]`` in [0, 1] (resized to the run's size, grey or colour as the run) to
class probabilities ``[N, classes]``, for any batch size; inversion and normalisation are
inside it. Its metadata (class names, image size, mode) is stored in the archive as
``fastmeta.json``. For MAML-family runs the network carries the adapted weights; for
Prototypical Networks it carries the encoder and the support images (embedded with each batch,
as in training). Before writing, the program is checked against the library's own predictions.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from fastmeta.algorithms.maml import MAML
from fastmeta.algorithms.protonet import PrototypicalNetwork, prototype_logits
from fastmeta.datasets.paths import PathLike
from fastmeta.functional.inner import adapt
from fastmeta.functional.params import functional_forward, module_state

if TYPE_CHECKING:
    from fastmeta.predict.model import AdaptedClassifier

METADATA = "fastmeta.json"


class Prepare(nn.Module):
    """Inversion and per-channel normalisation of [0, 1] images, as in training."""

    def __init__(self, invert: bool, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.invert = invert
        self.register_buffer("mean", mean.view(-1, 1, 1))
        self.register_buffer("std", std.view(-1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if self.invert:
            x = 1.0 - x
        return (x - self.mean) / self.std


class AdaptedNetwork(nn.Module):
    """A network holding adapted weights; the first ``classes`` outputs, as probabilities."""

    def __init__(self, prepare: Prepare, network: nn.Module, classes: int) -> None:
        super().__init__()
        self.prepare, self.network, self.classes = prepare, network, classes

    def forward(self, x: Tensor) -> Tensor:
        return self.network(self.prepare(x))[:, : self.classes].softmax(-1)


class PrototypeClassifier(nn.Module):
    """Probabilities from distances to the support class means, embedded with each batch."""

    def __init__(
        self, prepare: Prepare, encoder: nn.Module, support_x: Tensor, support_y: Tensor,
        classes: int, distance: str, scale: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.prepare, self.encoder = prepare, encoder
        self.register_buffer("support_x", support_x)
        self.register_buffer("support_y", support_y)
        self.classes, self.distance, self.scale = classes, distance, scale

    def forward(self, x: Tensor) -> Tensor:
        shots = self.support_x.shape[0]
        embedded = self.encoder(torch.cat([self.support_x, self.prepare(x)]))
        logits = prototype_logits(
            embedded[:shots], self.support_y, embedded[shots:], self.classes, self.distance,
            self.scale,
        )  # fmt: skip
        return logits.softmax(-1)


def classifier_module(classifier: AdaptedClassifier) -> nn.Module:
    """A plain module computing ``classifier``'s probabilities (MAML family or ProtoNets)."""
    algorithm = classifier.model.algorithm
    p = classifier.model.preprocessing
    channels = p.channels
    mean = torch.tensor(p.mean if p.mean is not None else [0.0] * channels)
    std = torch.tensor(p.std if p.std is not None else [1.0] * channels)
    prepare = Prepare(p.invert, mean, std)
    sx, sy = classifier.support_x.cpu(), classifier.support_y.cpu()
    classes = len(classifier.classes)
    if isinstance(algorithm, PrototypicalNetwork):
        encoder = copy.deepcopy(algorithm.encoder).cpu().eval()
        return PrototypeClassifier(
            prepare, encoder, sx, sy, classes, algorithm.distance, algorithm.scale
        )
    if isinstance(algorithm, MAML):
        network = copy.deepcopy(algorithm.model).cpu().eval()
        params, buffers = module_state(network)

        def support_loss(predictions: Tensor, targets: Tensor) -> Tensor:
            return algorithm.inner_loss_scale * algorithm.loss_fn(predictions, targets)

        fast = adapt(
            lambda q, x: functional_forward(network, q, buffers, x), params, sx, sy, support_loss,
            steps=algorithm.test_steps, lr=algorithm.inner_lr(),
            adapt_names=algorithm.adaptable_names(), first_order=True,
        )  # fmt: skip
        with torch.no_grad():
            for name, param in network.named_parameters():
                param.copy_(fast[name].detach())
        return AdaptedNetwork(prepare, network, classes)
    raise ValueError(
        f"export supports the MAML family and Prototypical Networks; this run's algorithm is "
        f"{type(algorithm).__name__}"
    )


def export_classifier(classifier: AdaptedClassifier, path: PathLike) -> Path:
    """Write ``classifier`` as a ``torch.export`` program with its metadata; returns the path.

    Raises ``RuntimeError`` if the exported program's probabilities differ from
    ``classifier.predict`` on a probe batch (an algorithm whose adaptation it does not mirror).
    """
    p = classifier.model.preprocessing
    module = classifier_module(classifier).eval()
    size = max(2, min(classifier.group_size, classifier.support_x.shape[0]))
    shape = (size, p.channels, p.image_size, p.image_size)
    probe = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(module, (probe,), dynamic_shapes=({0: batch},))
    with torch.no_grad():
        got = program.module()(probe)
    expected = classifier.logits(probe).softmax(-1).cpu()
    tolerance = 1e-4 if classifier.model.device.type == "cpu" else 1e-2  # GPUs: TF32 convolutions
    if not torch.allclose(got, expected, atol=tolerance):
        raise RuntimeError(
            f"the exported program disagrees with the library's predictions (max difference "
            f"{float((got - expected).abs().max()):.2e}); this algorithm's adaptation is not "
            "mirrored by the export"
        )
    metadata = {
        "format": 1,
        "classes": classifier.classes,
        "image_size": p.image_size,
        "mode": p.mode,
        "input": "float [N, C, H, W] in [0, 1], resized to image_size (LANCZOS)",
        "output": "probabilities [N, classes]",
        "algorithm": classifier.model.config.algorithm.name,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, path, extra_files={METADATA: json.dumps(metadata)})
    return path

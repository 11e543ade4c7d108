"""Export an adapted classifier as one ``torch.export`` program that needs only torch to run.

The program (``torch.export.save``; load it with ``torch.export.load(path).module()``) maps
images ``[N, C, H, W]`` in [0, 1] (made square and resized as the run's, grey or colour as the
run) to class probabilities ``[N, classes]``, for any batch size; inversion and normalisation are
inside it. Its metadata (class names, image size, mode) is stored in the archive as
``fastmeta.json``. For MAML-family runs the network carries the adapted weights; for
Prototypical Networks it carries the encoder and the support images. BatchNorm layers normalise
with the support set's statistics (:mod:`fastmeta.predict.batchnorm`), so an image's
probabilities do not depend on the rest of its batch. Before writing, the program is checked
against the library's own predictions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from fastmeta.algorithms.registry import algorithm_spec, algorithm_specs
from fastmeta.datasets.paths import PathLike
from fastmeta.predict.images import Preprocessing

METADATA = "fastmeta.json"


class Prepare(nn.Module):
    """Inversion and per-channel normalisation of [0, 1] images, as in training."""

    def __init__(self, invert: bool, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.invert = invert
        self.mean: Tensor  # buffers, registered below
        self.std: Tensor
        self.register_buffer("mean", mean.view(-1, 1, 1))
        self.register_buffer("std", std.view(-1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if self.invert:
            x = 1.0 - x
        return (x - self.mean) / self.std


class AdaptedNetwork(nn.Module):
    """The preprocessing, a network fixed to one support set, and the first ``classes``
    outputs as probabilities."""

    def __init__(self, prepare: Prepare, network: nn.Module, classes: int) -> None:
        super().__init__()
        self.prepare, self.network, self.classes = prepare, network, classes

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.network(self.prepare(x))
        return logits[:, : self.classes].softmax(-1)


def check_exportable(algorithm: str) -> None:
    """Refuse an algorithm whose registry entry does not say it exports."""
    if not algorithm_spec(algorithm).exports:
        exporting = [name for name, spec in algorithm_specs().items() if spec.exports]
        raise ValueError(
            f"export supports {', '.join(exporting)}; this run's algorithm is {algorithm}"
        )


def classifier_module(network: nn.Module, preprocessing: Preprocessing, classes: int) -> nn.Module:
    """A plain module computing probabilities: ``preprocessing``, then ``network`` (fixed to one
    support set by its algorithm's
    :meth:`~fastmeta.algorithms.MetaLearner.task_classifier`), its first ``classes`` outputs."""
    p = preprocessing
    mean = torch.tensor(p.mean if p.mean is not None else [0.0] * p.channels)
    std = torch.tensor(p.std if p.std is not None else [1.0] * p.channels)
    return AdaptedNetwork(Prepare(p.invert, mean, std), network.cpu().eval(), classes)


def export_classifier(
    network: nn.Module,
    preprocessing: Preprocessing,
    classes: list[str],
    *,
    algorithm: str,
    reference: Callable[[Tensor], Tensor],
    probe_size: int,
    tolerance: float,
    path: PathLike,
) -> Path:
    """Write ``network`` (see :func:`classifier_module`) as a ``torch.export`` program with its
    metadata; returns the path.

    Raises ``RuntimeError`` if the exported program's probabilities differ by more than
    ``tolerance`` from ``reference`` (the library's own predictions) on a probe batch of
    ``probe_size`` images: an algorithm whose adaptation the export does not mirror.
    """
    p = preprocessing
    module = classifier_module(network, p, len(classes)).eval()
    shape = (probe_size, p.channels, p.image_size, p.image_size)
    probe = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1)
    try:
        program = torch.export.export(module, (probe,), dynamic_shapes=({0: batch},))
    except RuntimeError as error:
        if "Constraints violated (batch)" not in str(error):
            raise
        # torch 2.4 assumes every free size is at least 2 once the program indexes by it (a
        # ProtoNets classifier slices its support off the batch) and refuses min=1
        raise RuntimeError(
            f"torch {torch.__version__}'s torch.export cannot keep this {algorithm} "
            "classifier's batch size free down to one image; export it with a newer torch "
            "(2.13 is tested)"
        ) from None
    with torch.no_grad():
        got = program.module()(probe)
    expected = reference(probe)
    if not torch.allclose(got, expected, atol=tolerance):
        raise RuntimeError(
            f"the exported program disagrees with the library's predictions (max difference "
            f"{float((got - expected).abs().max()):.2e}); this algorithm's adaptation is not "
            "mirrored by the export"
        )
    metadata = {
        "format": 1,
        "classes": classes,
        "image_size": p.image_size,
        "mode": p.mode,
        "input": "float [N, C, H, W] in [0, 1], made square by resize, then resized to "
        "image_size (LANCZOS)",
        "resize": p.resize,
        "output": "probabilities [N, classes]",
        "algorithm": algorithm,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, path, extra_files={METADATA: json.dumps(metadata)})
    return path

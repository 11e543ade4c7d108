"""Few-shot inference on new classes: ``fastmeta.load(run_dir).adapt(support).predict(x)``.

A trained run is loaded with its preprocessing; :meth:`FewShotModel.adapt` takes a support
set (a folder with one sub-folder per class, or images and labels) and returns a classifier
for those classes. Scores come from the algorithm's own evaluation path (MAML adapts with its
test-time inner steps, ProtoNets compares to class means), so they are what ``fastmeta eval``
measured. Networks whose BatchNorm uses batch statistics (the Conv4 of the presets) score
images in groups the size of an evaluation query set, in a fixed shuffled order, as in
training; a prediction therefore depends a little on the other images of its group.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from fastmeta.algorithms import MetaLearner
from fastmeta.algorithms.registry import algorithm_spec
from fastmeta.datasets.folder import FolderReport
from fastmeta.datasets.paths import PathLike
from fastmeta.datasets.registry import dataset_info
from fastmeta.predict.images import Preprocessing, query_files
from fastmeta.run.build import build_algorithm, build_model
from fastmeta.run.checkpoint import check_fingerprint, model_fingerprint, read_checkpoint
from fastmeta.run.directory import RunDirectory
from fastmeta.run.settings import data_options, image_size
from fastmeta.run_config import RunConfig
from fastmeta.tasks import TaskBatch

if TYPE_CHECKING:
    from fastmeta.run.folder_split import FolderSplit


def load(run: PathLike, device: str | torch.device = "cpu") -> FewShotModel:
    """The trained model of a run directory (best-on-validation weights, else the newest) or of
    one checkpoint file inside ``RUN_DIR/checkpoints/``."""
    directory = RunDirectory.of(run)
    given = Path(run).expanduser()
    config = directory.read_config()
    checkpoint = given if given.is_file() else directory.weights_file()
    if checkpoint is None:
        raise FileNotFoundError(f"{directory.path} has no checkpoint yet; train it first")
    preprocessing = run_preprocessing(config, directory)
    shape = (preprocessing.channels, preprocessing.image_size, preprocessing.image_size)
    state, fingerprint = read_checkpoint(checkpoint)
    model = build_model(config, shape)
    classes = _train_classes(config, state["algorithm"])
    algorithm = build_algorithm(config, model, classes, input_shape=shape)
    check_fingerprint(checkpoint, fingerprint, {"model": model_fingerprint(algorithm)})
    algorithm.load_state_dict(state["algorithm"])
    algorithm.to(device).eval()
    return FewShotModel(config, algorithm, preprocessing, checkpoint)


def run_split(config: RunConfig, run: RunDirectory) -> FolderSplit:
    """A folder run's split: ``split.yaml`` beside its config (so a moved run still loads),
    else the one ``data.split_file`` names, else planned from ``data.root``."""
    from fastmeta.run.folder_split import FolderSplit, plan_for_config

    beside = run.split_file
    return FolderSplit.from_file(beside) if beside.is_file() else plan_for_config(config)


def _train_classes(config: RunConfig, weights: dict[str, Any]) -> int | None:
    """Classes the run trained on, for algorithms with a classifier over all of them: the rows
    of that classifier in the saved weights (``None`` for the others)."""
    name = algorithm_spec(config.algorithm.name).classifier
    return None if name is None else int(weights[name].shape[0])


def run_preprocessing(config: RunConfig, run: RunDirectory) -> Preprocessing:
    """The preprocessing a run trained with: its ``split.yaml`` for a folder, else what the
    dataset's registry entry says (channels, inversion) at the run's image size."""
    info = dataset_info(config.data.dataset)
    if info.image_size is None:
        raise ValueError(
            f"this run learned {info.name} regression on generated tasks; adapt and export "
            "need an image run"
        )
    if info.own_data:
        split = run_split(config, run)
        mean = None if split.mean is None else tuple(split.mean)
        std = None if split.std is None else tuple(split.std)
        return Preprocessing(split.image_size, split.mode, mean, std)
    channels = info.channels_of(data_options(config.data))
    mode = "L" if channels == 1 else "RGB"
    return Preprocessing(image_size(config.data), mode, invert=info.invert)


@dataclass
class FewShotModel:
    """A meta-trained algorithm with its run's preprocessing, ready to adapt to new classes."""

    config: RunConfig
    algorithm: MetaLearner
    preprocessing: Preprocessing
    checkpoint: Path

    @property
    def device(self) -> torch.device:
        return next(self.algorithm.parameters()).device

    def adapt(
        self,
        support: PathLike | Tensor,
        labels: Tensor | None = None,
        class_names: Sequence[str] | None = None,
    ) -> AdaptedClassifier:
        """A classifier for the support classes.

        ``support`` is a folder with one sub-folder per class, or images ``[N, C, H, W]`` in
        [0, 1] at the run's size with integer ``labels [N]`` in ``0..k-1`` (``class_names``
        optional). Support folders may have any number of images per class.
        """
        if isinstance(support, Tensor):
            if labels is None:
                raise ValueError("support images need labels: adapt(images, labels)")
            images, labels = support.float(), labels.long()
            count = int(labels.max()) + 1 if labels.numel() else 0
            names = [str(c) for c in range(count)] if class_names is None else list(class_names)
            report = None
        else:
            images, labels, names, report = self.preprocessing.read_classes(support)
        return AdaptedClassifier(self, images, labels, names, report)


@dataclass
class Predictions:
    """Class probabilities of query files; ``skipped`` lists (file, reason) not classified."""

    files: list[str]
    classes: list[str]
    probabilities: Tensor
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def predicted(self) -> list[str]:
        return [self.classes[i] for i in self.probabilities.argmax(1).tolist()]

    def write_csv(self, path: PathLike) -> Path:
        """``file, predicted_class, prob_<class>...``: one row per classified file."""
        path = Path(path)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "predicted_class", *(f"prob_{c}" for c in self.classes)])
            for name, label, row in zip(
                self.files, self.predicted, self.probabilities.tolist(), strict=True
            ):
                writer.writerow([name, label, *(f"{p:.6f}" for p in row)])
        return path


class AdaptedClassifier:
    """A run's algorithm adapted to the classes of one support set; ``support_report`` says
    what a support folder had that could not be used (``None`` for tensors)."""

    def __init__(
        self,
        model: FewShotModel,
        images: Tensor,
        labels: Tensor,
        classes: list[str],
        support_report: FolderReport | None = None,
    ) -> None:
        if images.dim() != 4 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"support images must be [N, C, H, W] with one label each; got images of shape "
                f"{tuple(images.shape)} and {labels.shape[0]} labels"
            )
        expected = (model.preprocessing.channels, *(2 * [model.preprocessing.image_size]))
        if tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"support images are {tuple(images.shape[1:])} but the run was trained on "
                f"{expected}; pass a folder, or resize to the run's image size"
            )
        present = sorted(set(labels.tolist()))
        if present != list(range(len(classes))):
            raise ValueError(
                f"support labels must cover 0..{len(classes) - 1} (one per class name); got "
                f"{present}"
            )
        if len(classes) < 2:
            raise ValueError(f"a support set needs at least 2 classes; got {classes}")
        self.model = model
        self.classes = list(classes)
        self.support_report = support_report
        self.support_x = model.preprocessing.prepare(images).to(model.device)
        self.support_y = labels.to(model.device)
        self._check_outputs()
        ways, _, queries = model.config.sampler.test_episodes()
        self.group_size = ways * queries

    def _check_outputs(self) -> None:
        """Refuse more classes than a classifier head (one output per training way) has."""
        config = self.model.config
        if algorithm_spec(config.algorithm.name).model_output != "logits":
            return  # metric methods score every support class
        ways = config.sampler.ways
        if len(self.classes) > ways:
            raise ValueError(
                f"the support set has {len(self.classes)} classes but this model was "
                f"meta-trained for {ways}-way tasks: its head has {ways} outputs. Give at most "
                f"{ways} classes, or train with sampler.ways={len(self.classes)} (or a metric "
                "method such as protonet, which takes any number of classes)"
            )

    def _scores(self, prepared: Tensor) -> Tensor:
        """The algorithm's query scores (logits) ``[Q, outputs]`` for one group of images."""
        batch = TaskBatch(
            self.support_x[None], self.support_y[None], prepared[None],
            torch.zeros(1, prepared.shape[0], dtype=torch.long, device=prepared.device),
        )  # fmt: skip
        return self.model.algorithm.evaluate(batch).predictions[0]

    def logits(self, images: Tensor) -> Tensor:
        """Scores ``[N, classes]`` of images in [0, 1], in groups of an evaluation query set."""
        prepared = self.model.preprocessing.prepare(images.float()).to(self.model.device)
        count = prepared.shape[0]
        out = torch.empty(count, len(self.classes), device=prepared.device)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(0))
        for group in torch.tensor_split(order, math.ceil(count / max(1, self.group_size))):
            group = group.to(prepared.device)
            out[group] = self._scores(prepared[group])[:, : len(self.classes)]
        return out

    def predict(self, x: Tensor | PathLike | Sequence[PathLike]) -> Tensor:
        """Class probabilities ``[N, classes]`` of images ``[N, C, H, W]`` in [0, 1] at the run's
        size, or of image files / a folder of them (an unusable file raises)."""
        if not isinstance(x, Tensor):
            found = self.classify(x)
            if found.skipped:
                raise ValueError(f"cannot read {found.skipped[0][0]}: {found.skipped[0][1]}")
            return found.probabilities
        return self.logits(x).softmax(-1).cpu()

    def classify(self, query: PathLike | Sequence[PathLike]) -> Predictions:
        """Probabilities for image files or a folder; unusable files are listed, not scored."""
        images, names, skipped = self.model.preprocessing.read_files(query_files(query))
        probabilities = self.predict(images) if names else torch.empty(0, len(self.classes))
        return Predictions(names, self.classes, probabilities, skipped)

    def export(self, path: PathLike) -> Path:
        """Save a classifier for these classes that runs with torch alone (``torch.export``;
        see :mod:`fastmeta.predict.export`), checked against :meth:`predict` first."""
        from fastmeta.predict.export import check_exportable, export_classifier

        name = self.model.config.algorithm.name
        check_exportable(name)
        network = self.model.algorithm.task_classifier(self.support_x, self.support_y)
        return export_classifier(
            network, self.model.preprocessing, self.classes, algorithm=name,
            reference=lambda images: self.logits(images).softmax(-1).cpu(),
            probe_size=max(2, min(self.group_size, self.support_x.shape[0])),
            tolerance=1e-4 if self.model.device.type == "cpu" else 1e-2,  # GPUs: TF32 convs
            path=path,
        )  # fmt: skip

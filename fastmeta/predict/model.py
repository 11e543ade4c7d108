"""Few-shot inference on new classes: ``fastmeta.load(run_dir).adapt(support).predict(x)``.

A trained run is loaded with its preprocessing; :meth:`FewShotModel.adapt` takes a support
set (a folder with one sub-folder per class, or images and labels) and returns a classifier
for those classes. Scores come from the algorithm's own evaluation path (MAML adapts with its
test-time inner steps, ProtoNets compares to class means), so they are what ``fastmeta eval``
measured, with one difference: a prediction never depends on the other images predicted with
it. Networks whose BatchNorm uses batch statistics (the Conv4 of the presets) normalise every
query with the support set's statistics (:mod:`fastmeta.predict.batchnorm`) where the
algorithm exports a classifier (the MAML family, ProtoNets), and score each query in an episode
of its own otherwise. ``adapt(..., transductive=True)`` scores queries in groups the size of an
evaluation query set instead, as ``fastmeta eval`` does (the benchmarks' protocol).
"""

from __future__ import annotations

import copy
import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from fastmeta.algorithms import MetaLearner
from fastmeta.algorithms.registry import algorithm_spec
from fastmeta.datasets.folder import FolderReport
from fastmeta.datasets.paths import PathLike
from fastmeta.datasets.registry import dataset_info
from fastmeta.predict.batchnorm import freeze_to_support
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
        return Preprocessing(split.image_size, split.mode, mean, std, resize=split.resize)
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
        *,
        transductive: bool = False,
    ) -> AdaptedClassifier:
        """A classifier for the support classes.

        ``support`` is a folder with one sub-folder per class, or images ``[N, C, H, W]`` in
        [0, 1] at the run's size with integer ``labels [N]`` in ``0..k-1`` (``class_names``
        optional). Support folders may have any number of images per class. ``transductive``
        scores queries in groups of an evaluation query set with the algorithm's own
        evaluation, as ``fastmeta eval`` does; by default each prediction depends on its image
        and the support set alone.
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
        return AdaptedClassifier(self, images, labels, names, report, transductive=transductive)


@dataclass
class Predictions:
    """Class probabilities of query files; ``skipped`` lists (file, reason) not classified.

    ``truth`` is the class each file's folder names (``query/<class>/...``), ``None`` where
    it names no support class; ``images`` are the decoded queries ``[N, C, H, W]`` in [0, 1].
    """

    files: list[str]
    classes: list[str]
    probabilities: Tensor
    skipped: list[tuple[str, str]] = field(default_factory=list)
    truth: list[str | None] = field(default_factory=list)
    images: Tensor | None = None

    @property
    def predicted(self) -> list[str]:
        return [self.classes[i] for i in self.probabilities.argmax(1).tolist()]

    @property
    def confidence(self) -> list[float]:
        """The probability of each file's predicted class."""
        values: list[float] = self.probabilities.max(1).values.tolist()
        return values

    def top(self, k: int) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable classes of each file, with their probabilities."""
        k = min(k, len(self.classes))
        values, indices = self.probabilities.topk(k, dim=1)
        return [
            [(self.classes[i], p) for i, p in zip(row, probs, strict=True)]
            for row, probs in zip(indices.tolist(), values.tolist(), strict=True)
        ]

    @property
    def labelled(self) -> list[int]:
        """Indices of the files whose folder names their true class."""
        return [i for i, t in enumerate(self.truth) if t is not None]

    @property
    def accuracy(self) -> float | None:
        """The share of labelled files predicted right (``None`` when none is labelled)."""
        known = self.labelled
        if not known:
            return None
        predicted = self.predicted
        return sum(predicted[i] == self.truth[i] for i in known) / len(known)

    def confusion(self) -> Tensor:
        """Counts ``[classes, classes]`` of labelled files: row = true class, column = predicted."""
        index = {name: i for i, name in enumerate(self.classes)}
        matrix = torch.zeros(len(self.classes), len(self.classes), dtype=torch.long)
        predicted = self.predicted
        for i in self.labelled:
            matrix[index[str(self.truth[i])], index[predicted[i]]] += 1
        return matrix

    def write_csv(self, path: PathLike, top_k: int = 3) -> Path:
        """``file, predicted_class, confidence[, true_class, correct], top2_class, top2_prob,
        ..., prob_<class>...``: one row per classified file, the true class where its folder
        names one."""
        path = Path(path)
        k = min(top_k, len(self.classes))
        labelled = bool(self.labelled)
        header = ["file", "predicted_class", "confidence"]
        header += ["true_class", "correct"] if labelled else []
        header += [f"top{r}_{what}" for r in range(2, k + 1) for what in ("class", "prob")]
        header += [f"prob_{c}" for c in self.classes]
        rows = zip(
            self.files, self.top(k), self.probabilities.tolist(),
            self.truth or [None] * len(self.files), strict=True,
        )  # fmt: skip
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for name, top, row, truth in rows:
                line = [name, top[0][0], f"{top[0][1]:.6f}"]
                if labelled:
                    line += ["", ""] if truth is None else [truth, str(int(truth == top[0][0]))]
                line += [item for c, p in top[1:] for item in (c, f"{p:.6f}")]
                writer.writerow([*line, *(f"{p:.6f}" for p in row)])
        return path


class AdaptedClassifier:
    """A run's algorithm adapted to the classes of one support set; ``support_report`` says
    what a support folder had that could not be used (``None`` for tensors).

    Each prediction depends on its image and the support set alone (see the module's note),
    unless ``transductive``.
    """

    def __init__(
        self,
        model: FewShotModel,
        images: Tensor,
        labels: Tensor,
        classes: list[str],
        support_report: FolderReport | None = None,
        *,
        transductive: bool = False,
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
        self.transductive = transductive
        self.support_x = model.preprocessing.prepare(images).to(model.device)
        self.support_y = labels.to(model.device)
        self._check_outputs()
        self._network: nn.Module | None = None
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

    @property
    def exports(self) -> bool:
        """Whether the algorithm fixes a plain network to the support set (and can export)."""
        return algorithm_spec(self.model.config.algorithm.name).exports

    def network(self) -> nn.Module:
        """The network fixed to this support set (adapted weights or support embeddings), its
        BatchNorm normalising with the support set's statistics; built once."""
        if self._network is None:
            algorithm = self.model.algorithm
            adapted = algorithm.task_classifier(self.support_x, self.support_y)
            self._network = freeze_to_support(adapted, self.support_x)
        return self._network

    def _episode_scores(self, queries: Tensor, per_task: int) -> Tensor:
        """The algorithm's own evaluation, ``per_task`` queries to an episode with the support
        set: logits ``[Q, outputs]``."""
        tasks = queries.shape[0] // per_task
        batch = TaskBatch(
            self.support_x.expand(tasks, *self.support_x.shape),
            self.support_y.expand(tasks, -1),
            queries.view(tasks, per_task, *queries.shape[1:]),
            torch.zeros(tasks, per_task, dtype=torch.long, device=queries.device),
        )  # fmt: skip
        return self.model.algorithm.evaluate(batch).predictions.flatten(0, 1)

    def logits(self, images: Tensor) -> Tensor:
        """Scores ``[N, classes]`` of images in [0, 1] at the run's size."""
        prepared = self.model.preprocessing.prepare(images.float()).to(self.model.device)
        count, k = prepared.shape[0], len(self.classes)
        if self.transductive:  # groups of a query set, in a fixed shuffled order
            out = torch.empty(count, k, device=prepared.device)
            order = torch.randperm(count, generator=torch.Generator().manual_seed(0))
            for group in torch.tensor_split(order, math.ceil(count / max(1, self.group_size))):
                group = group.to(prepared.device)
                out[group] = self._episode_scores(prepared[group], len(group))[:, :k]
            return out
        if self.exports:
            network = self.network()
            with torch.no_grad():
                parts = [network(chunk)[:, :k] for chunk in torch.split(prepared, 256)]
        else:  # one query to an episode: sixteen episodes at a time
            parts = [self._episode_scores(chunk, 1)[:, :k] for chunk in torch.split(prepared, 16)]
        return torch.cat(parts) if parts else torch.empty(0, k, device=prepared.device)

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
        """Probabilities for image files or a folder; unusable files are listed, not scored.
        A file under a folder named like a support class (``query/<class>/...``) has that class
        as its truth."""
        files = query_files(query)
        images, names, skipped = self.model.preprocessing.read_files(
            [(name, path) for name, path, _ in files]
        )
        folder_of = {name: folder for name, _, folder in files}
        known = set(self.classes)
        truth = [folder_of[n] if folder_of[n] in known else None for n in names]
        probabilities = self.predict(images) if names else torch.empty(0, len(self.classes))
        return Predictions(names, self.classes, probabilities, skipped, truth, images)

    def export(self, path: PathLike) -> Path:
        """Save a classifier for these classes that runs with torch alone (``torch.export``;
        see :mod:`fastmeta.predict.export`), checked against :meth:`predict` first (its
        BatchNorm uses the support set's statistics, whatever ``transductive`` says)."""
        from fastmeta.predict.export import check_exportable, export_classifier

        name = self.model.config.algorithm.name
        check_exportable(name)
        network = self.network()

        def reference(images: Tensor) -> Tensor:
            prepared = self.model.preprocessing.prepare(images).to(self.model.device)
            with torch.no_grad():
                logits: Tensor = network(prepared)
            return logits[:, : len(self.classes)].softmax(-1).cpu()

        return export_classifier(
            copy.deepcopy(network), self.model.preprocessing, self.classes, algorithm=name,
            reference=reference, probe_size=4,
            tolerance=1e-4 if self.model.device.type == "cpu" else 1e-2,  # GPUs: TF32 convs
            path=path,
        )  # fmt: skip

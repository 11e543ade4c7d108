"""A run's view of a user's image folder: the class split, preprocessing and report.

``fastmeta train --data FOLDER`` plans it once, prints :meth:`FolderSplit.report` (classes,
images per class, everything left out and why) and writes it as ``split.yaml`` into the run
directory; resuming, evaluating, ``fastmeta adapt`` and ``fastmeta export`` read it back, so
the classes, image size, channels and normalisation stay those of training even when the
folder changes later.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import yaml

from fastmeta.data.normalize import Normalize, channel_stats
from fastmeta.data.store import ImageStore
from fastmeta.datasets.errors import MissingDataError, SplitError
from fastmeta.datasets.folder import is_grey_folder, read_image_folder, split_classes
from fastmeta.datasets.paths import SPLITS, PathLike
from fastmeta.datasets.splits import build_store
from fastmeta.run.directory import SPLIT_FILE, RunDirectory
from fastmeta.run.settings import data_options, image_size

if TYPE_CHECKING:
    from fastmeta.run_config import RunConfig

RESIZE_WORDS = {"crop": "centre crop", "pad": "padding", "squash": "squashing"}


@dataclass(frozen=True)
class FolderSplit:
    """Which classes of ``root`` train, validate and test, and how images are prepared.

    ``classes`` maps train/val/test to class names; ``mean``/``std`` (per channel, of the
    training images) are ``None`` when normalisation is off. ``skipped`` (file, reason),
    ``empty_classes`` and ``small_classes`` (name: image count, below ``min_images``) were
    left out. ``resize`` is how non-square images became square (``"squash"`` in the
    ``split.yaml`` of a run from before the option existed, as those runs were trained).
    """

    root: str
    image_size: int
    mode: str
    fractions: tuple[float, float, float]
    seed: int
    min_images: int
    classes: dict[str, list[str]]
    images_per_class: dict[str, int]
    mean: list[float] | None
    std: list[float] | None
    skipped: list[tuple[str, str]]
    empty_classes: list[str]
    small_classes: dict[str, int]
    resize: str = "squash"

    def normalizer(self) -> Normalize | None:
        return None if self.mean is None or self.std is None else Normalize(self.mean, self.std)

    def to_yaml(self) -> str:
        data = dataclasses.asdict(self)
        data["fractions"] = list(self.fractions)
        data["skipped"] = [list(item) for item in self.skipped]
        return yaml.safe_dump(data, sort_keys=False)

    @classmethod
    def from_file(cls, path: PathLike) -> FolderSplit:
        path = Path(path)
        if not path.is_file():
            raise MissingDataError(
                f"split file {path} is missing; it is written by `fastmeta train --data` into "
                "the run directory. Copy it back, or set data.split_file to its new place."
            )
        data: dict[str, Any] = yaml.safe_load(path.read_text())
        data["fractions"] = tuple(data["fractions"])
        data["skipped"] = [tuple(item) for item in data["skipped"]]
        return cls(**data)

    def report(self) -> str:
        """What was found, what was left out and why, the split and the preprocessing."""
        total = sum(self.images_per_class.values())
        per_class = [f"{name} {n}" for name, n in self.images_per_class.items()]
        lines = [
            f"{self.root}: {len(self.images_per_class)} classes, {total} images used "
            f"(resized to {self.image_size}x{self.image_size} by {RESIZE_WORDS[self.resize]}, "
            f"{'grey' if self.mode == 'L' else 'colour'})",
            "images per class:",
            *_pack(per_class, "  ", "  "),
        ]
        left_out = [f"  skipped {path}: {reason}" for path, reason in self.skipped]
        left_out += [f"  class folder {name}/ has no usable image" for name in self.empty_classes]
        left_out += [
            f"  class {name} left out: {n} images, fewer than the {self.min_images} an episode "
            "takes from a class (shots + queries)"
            for name, n in self.small_classes.items()
        ]
        lines += ["left out:", *left_out] if left_out else ["nothing left out"]
        fractions = "/".join(f"{f:g}" for f in self.fractions)
        lines.append(f"class split (data.fractions {fractions}, data.split_seed {self.seed}):")
        for name in SPLITS:
            chosen = self.classes[name]
            lines += _pack(chosen, f"  {name:<5} {len(chosen):>3}: ", " " * 13)
        if self.mean is not None and self.std is not None:
            mean = ", ".join(f"{m:.3f}" for m in self.mean)
            std = ", ".join(f"{s:.3f}" for s in self.std)
            lines.append(f"normalisation: mean [{mean}], std [{std}] of the training images")
        else:
            lines.append("normalisation: none (pixel values in [0, 1])")
        return "\n".join(lines)


def _pack(items: list[str], first: str, indent: str, width: int = 96) -> list[str]:
    """``items`` joined by commas into lines of at most ``width`` characters (an item is never
    split), the first line starting with ``first`` and the others with ``indent``."""
    lines: list[str] = []
    current: list[str] = []
    prefix = first
    for item in items:
        if current and len(prefix) + len(", ".join([*current, item])) > width:
            lines.append(prefix + ", ".join(current) + ",")
            current, prefix = [], indent
        current.append(item)
    return [*lines, (prefix + ", ".join(current)).rstrip()]


def plan_folder_split(
    root: PathLike,
    *,
    image_size: int,
    channels: int | None,
    fractions: tuple[float, float, float],
    seed: int,
    min_images: int,
    normalize: bool,
    min_classes: dict[str, int],
    resize: str = "crop",
    cache_dir: PathLike | None = None,
) -> FolderSplit:
    """Read ``root``, leave out classes with fewer than ``min_images`` and split the rest.

    ``channels`` of ``None`` chooses 1 for an all-grey folder, else 3. ``min_classes`` gives
    the classes each split needs (the episode ways); too few raise an error saying what to change.
    """
    folder = Path(root).expanduser().resolve()
    if channels is None:
        channels = 1 if is_grey_folder(folder) else 3
    mode = {1: "L", 3: "RGB"}[channels]
    data, report = read_image_folder(folder, image_size, mode, resize=resize, cache_dir=cache_dir)
    sizes = np.bincount(data.labels, minlength=len(data.names)).tolist()
    counts = dict(zip(data.names, sizes, strict=True))
    small = {name: n for name, n in counts.items() if n < min_images}
    usable = {name: n for name, n in counts.items() if n >= min_images}
    if not usable:
        raise SplitError(
            f"no class of {folder} has the {min_images} images an episode takes from a class "
            "(shots + queries): add images, or lower sampler.shots / sampler.queries"
        )
    classes = split_classes(sorted(usable), fractions, seed)
    for split, needed in min_classes.items():
        if len(classes[split]) < needed:
            raise SplitError(
                f"the {split} split of {folder} gets {len(classes[split])} classes but its "
                f"episodes need {needed} (ways): add class folders, change data.fractions (now "
                f"{list(fractions)}) or lower sampler.ways / sampler.test_ways"
            )
    mean = std = None
    if normalize:
        train = build_store(data, [(n, 0) for n in classes["train"]], "train classes", "")
        mean, std = channel_stats(train.images.numpy())
    three = cast(tuple[float, float, float], tuple(fractions))  # a tuple even if given a list
    return FolderSplit(
        str(folder), image_size, mode, three, seed, min_images, classes, usable,
        mean, std, report.skipped, report.empty_classes, small, resize,
    )  # fmt: skip


def split_stores(split: FolderSplit, cache_dir: PathLike | None = None) -> dict[str, ImageStore]:
    """The train/val/test stores of ``split`` (decoded once, cached)."""
    data, _ = read_image_folder(
        split.root, split.image_size, split.mode, resize=split.resize, cache_dir=cache_dir
    )
    fix = f"the folder changed since {SPLIT_FILE} was written; restore it or train a new run"
    return {
        name: build_store(data, [(c, 0) for c in split.classes[name]], f"{name} classes", fix)
        for name in SPLITS
    }


def plan_for_config(config: RunConfig) -> FolderSplit:
    """The split of a ``data.dataset="folder"`` run: its ``split_file``, else planned afresh."""
    d, s = config.data, config.sampler
    options = data_options(d)
    if options.split_file is not None:
        return FolderSplit.from_file(options.split_file)
    if d.root is None:
        raise MissingDataError(
            "data.dataset=folder needs data.root=<folder with one sub-folder per class> "
            "(or `fastmeta train --data FOLDER`)"
        )
    test_ways, test_shots, test_queries = s.test_episodes()
    return plan_folder_split(
        d.root,
        image_size=image_size(d),
        channels=options.channels,
        fractions=options.fractions,
        seed=options.split_seed,
        min_images=max(s.shots + s.queries, test_shots + test_queries),
        normalize=options.normalize != "none",
        min_classes={"train": s.ways, "val": test_ways, "test": test_ways},
        resize=options.resize,
    )


def plan_run_split(config: RunConfig, run_dir: PathLike) -> tuple[RunConfig, FolderSplit]:
    """Plan ``config``'s folder split for a new run in ``run_dir``; the config to train with,
    which names the ``split.yaml`` the run will write there (when it starts) in
    ``data.split_file``. Nothing is written."""
    split = plan_for_config(config)
    path = RunDirectory(run_dir).split_file.resolve()
    options = {**config.data.options, "split_file": str(path)}
    data = dataclasses.replace(config.data, options=options)
    return dataclasses.replace(config, data=data), split

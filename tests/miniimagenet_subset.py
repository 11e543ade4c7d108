"""A small copy of the real mini-ImageNet layout, for tests that run commands on real images."""

from __future__ import annotations

import csv
from pathlib import Path


def first_rows(real: Path, split: str, per_class: int, classes: int) -> list[tuple[str, str]]:
    """``(filename, label)`` of the first ``per_class`` images of the first ``classes`` classes
    of ``split``'s real Ravi & Larochelle list, class by class."""
    with open(real / "splits" / f"{split}.csv", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    chosen: dict[str, list[str]] = {}
    for filename, label in rows:
        if len(chosen) < classes or label in chosen:
            files = chosen.setdefault(label, [])
            if len(files) < per_class:
                files.append(filename)
    return [(filename, label) for label, files in chosen.items() for filename in files]


def link_subset(real: Path, root: Path, per_class: int, classes: int = 5) -> Path:
    """``root`` laid out like ``real`` (split csvs, images/), holding :func:`first_rows` of
    each split, as links to the files."""
    (root / "images").mkdir(parents=True)
    for split in ("train", "val", "test"):
        with open(root / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["filename", "label"])
            for filename, label in first_rows(real, split, per_class, classes):
                writer.writerow([filename, label])
                (root / "images" / filename).symlink_to(real / "images" / filename)
    return root

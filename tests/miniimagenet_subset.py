"""A small copy of the real mini-ImageNet layout, for tests that run commands on real images."""

from __future__ import annotations

import csv
from pathlib import Path


def link_subset(real: Path, root: Path, per_class: int, classes: int = 5) -> Path:
    """``root`` laid out like ``real`` (split csvs, images/), holding the first ``per_class``
    images of the first ``classes`` classes of each split's real list, as links to the files."""
    (root / "images").mkdir(parents=True)
    for split in ("train", "val", "test"):
        with open(real / "splits" / f"{split}.csv", newline="") as handle:
            rows = list(csv.reader(handle))[1:]
        chosen: dict[str, list[str]] = {}
        for filename, label in rows:
            if len(chosen) < classes or label in chosen:
                files = chosen.setdefault(label, [])
                if len(files) < per_class:
                    files.append(filename)
        with open(root / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["filename", "label"])
            for label, files in chosen.items():
                for filename in files:
                    writer.writerow([filename, label])
                    (root / "images" / filename).symlink_to(real / "images" / filename)
    return root

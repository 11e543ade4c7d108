"""Reading a user's support folder and query images the way a run's training images were read.

A run's :class:`Preprocessing` (image size, grey or colour, how a non-square image becomes
square, inversion, normalisation) comes from
its ``split.yaml`` for an image folder, or from the benchmark's conventions otherwise. Images are
returned in [0, 1]; :meth:`Preprocessing.prepare` applies inversion and normalisation, which
the exported classifier also carries inside, so it takes the same [0, 1] images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fastmeta.datasets.folder import FolderReport, read_image_folder
from fastmeta.datasets.imaging import CHANNELS, DecodeSpec, ImageDecodeError, decode_bytes
from fastmeta.datasets.paths import PathLike


@dataclass(frozen=True)
class Preprocessing:
    """How a run turns an image file into the network's input.

    ``mode`` is ``"L"`` (grey) or ``"RGB"``; ``invert`` maps v to 1 - v (Omniglot's strokes);
    ``mean``/``std`` standardise each channel when given; ``resize`` is ``"crop"``, ``"pad"``
    or ``"squash"`` (see :class:`~fastmeta.datasets.imaging.DecodeSpec`).
    """

    image_size: int
    mode: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    invert: bool = False
    resize: str = "squash"

    @property
    def channels(self) -> int:
        return CHANNELS[self.mode]

    def prepare(self, images: Tensor) -> Tensor:
        """[0, 1] images as the network saw them in training (inverted, normalised)."""
        if self.invert:
            images = 1.0 - images
        if self.mean is not None and self.std is not None:
            mean = torch.tensor(self.mean, device=images.device).view(-1, 1, 1)
            std = torch.tensor(self.std, device=images.device).view(-1, 1, 1)
            images = (images - mean) / std
        return images

    def read_files(
        self, files: Sequence[tuple[str, Path]]
    ) -> tuple[Tensor, list[str], list[tuple[str, str]]]:
        """Decode ``(name, path)`` pairs: ``images [M, C, H, W]`` in [0, 1], the names of the
        decoded ones, and ``(name, reason)`` for each file that is not a usable image."""
        spec = DecodeSpec(self.image_size, self.mode, resize=self.resize)
        arrays, names, failures = [], [], []
        for name, path in files:
            try:
                arrays.append(decode_bytes(path.read_bytes(), spec))
                names.append(name)
            except ImageDecodeError as error:
                failures.append((name, error.reason))
        stacked = np.stack(arrays) if arrays else np.empty((0, *spec.shape), np.uint8)
        return torch.from_numpy(stacked).float() / 255.0, names, failures

    def read_classes(self, root: PathLike) -> tuple[Tensor, Tensor, list[str], FolderReport]:
        """A support folder (one sub-folder per class): images in [0, 1], labels, class names."""
        data, report = read_image_folder(root, self.image_size, self.mode, resize=self.resize)
        images = torch.from_numpy(data.images).float() / 255.0
        return images, torch.from_numpy(data.labels), list(data.names), report


def query_files(query: PathLike | Sequence[PathLike]) -> list[tuple[str, Path, str]]:
    """``(name, path, folder)`` of every query file: a folder (searched recursively, hidden
    files ignored; names relative to it, ``folder`` the first sub-folder, ``""`` for a file at
    its top) or files (names as given, ``folder`` the one holding the file)."""
    # a str or path is one query; anything else is taken as a sequence of them
    items: list[PathLike] = [query] if isinstance(query, str | os.PathLike) else list(query)
    found: list[tuple[str, Path, str]] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                relative = file.relative_to(path)
                if file.is_file() and not any(p.startswith(".") for p in relative.parts):
                    folder = relative.parts[0] if len(relative.parts) > 1 else ""
                    found.append((relative.as_posix(), file, folder))
        elif path.is_file():
            found.append((str(item), path, path.resolve().parent.name))
        else:
            raise FileNotFoundError(f"query {path} is neither an image file nor a folder")
    if not found:
        raise FileNotFoundError(f"no query files found in {', '.join(map(str, items))}")
    return found

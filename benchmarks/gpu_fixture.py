"""A tiny Omniglot in the layout of the real files, for ``python -m benchmarks.gpu --dry-run``.

``images_background.zip`` and ``images_evaluation.zip`` (``<part>/<Alphabet>/characterNN/*.png``)
with enough characters for MAML's 1100 / 100 / rest character split, plus Vinyals split lists,
so the dry run trains the ``maml-omniglot-5w1s`` preset and builds real-Omniglot batches through
the same loaders as the real data. The glyphs are small random patterns, one per character.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

CHARACTERS = 1210
"""More than the MAML split's 1100 + 100 characters, so its test split is not empty."""
DRAWINGS = 3
SIDE = 10
PER_ALPHABET = 40
LISTED = {"train": range(0, 20), "val": range(20, 30), "test": range(30, 40)}
"""Characters (by number) of each Vinyals list, unrotated."""


def _names(count: int) -> list[tuple[str, str]]:
    """(alphabet, characterNN) of ``count`` characters, :data:`PER_ALPHABET` per alphabet."""
    return [(f"Alphabet{i // PER_ALPHABET:02d}", f"character{i % PER_ALPHABET + 1:02d}")
            for i in range(count)]  # fmt: skip


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, "PNG")
    return buffer.getvalue()


def write_omniglot(data_root: Path, characters: int = CHARACTERS, seed: int = 0) -> Path:
    """Write ``data_root/omniglot/`` (two zips and ``splits/vinyals``); returns ``data_root``."""
    root = data_root / "omniglot"
    (root / "splits" / "vinyals").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = _names(characters)
    half = characters // 2
    for part, chosen in (("images_background", names[:half]), ("images_evaluation", names[half:])):
        with zipfile.ZipFile(root / f"{part}.zip", "w") as archive:
            for alphabet, character in chosen:
                glyph = rng.random((SIDE, SIDE)) < 0.3  # strokes black on white, as the originals
                for drawing in range(1, DRAWINGS + 1):
                    noisy = glyph ^ (rng.random((SIDE, SIDE)) < 0.05)
                    pixels = np.where(noisy, 0, 255).astype(np.uint8)
                    name = f"{part}/{alphabet}/{character}/{drawing:02d}.png"
                    archive.writestr(name, _png(pixels))
    for split, numbers in LISTED.items():
        lines = [f"{names[i][0]}/{names[i][1]}/rot000" for i in numbers]
        (root / "splits" / "vinyals" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return data_root

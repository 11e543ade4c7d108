"""A small image folder of synthetic pattern classes, to try the own-data path end to end.

Each class is a smooth random pattern (a 4x4 grid of intensities, upsampled); its images are
shifted, contrast-jittered, noisy, tinted copies, saved in mixed formats (PNG, JPEG, BMP, GIF,
WebP), sizes and modes (colour and grey). The classes are told apart by their pattern alone,
so a few-shot learner that has seen some of them can learn new ones from a handful of images.

Run ``python -m fastmeta.datasets.patterns OUT_FOLDER`` to write one (see docs/OWN_DATA.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .paths import PathLike

FORMATS = (("png", "PNG"), ("jpg", "JPEG"), ("bmp", "BMP"), ("gif", "GIF"), ("webp", "WEBP"))


def class_pattern(seed: int, label: int, size: int) -> np.ndarray:
    """The class's base pattern: ``[size, size]`` floats in [0, 1]."""
    grid = np.random.default_rng([seed, label]).random((4, 4), dtype=np.float32)
    smooth = Image.fromarray(grid, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    pattern: np.ndarray = np.clip(np.asarray(smooth), 0.0, 1.0)
    return pattern


def pattern_image(pattern: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """One example of a class: its pattern shifted, jittered, noisy and tinted (RGB)."""
    size = pattern.shape[0]
    shift = rng.integers(-(size // 8), size // 8 + 1, size=2)
    pixels = np.roll(pattern, tuple(shift), axis=(0, 1))
    pixels = (pixels - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + rng.normal(0, 0.06, pixels.shape)
    tint = rng.uniform(0.75, 1.0, size=3)
    rgb = np.clip(pixels[..., None] * tint, 0.0, 1.0)
    return Image.fromarray((rgb * 255).astype(np.uint8), mode="RGB")


def write_pattern_folder(
    root: PathLike,
    classes: int = 30,
    images: int = 20,
    size: int = 32,
    seed: int = 0,
    query: int = 0,
) -> Path:
    """Write ``classes`` sub-folders ``pattern00, ...`` of ``images`` files each under ``root``.

    File ``i`` of a class uses format ``i % 5``; every third image is grey and sizes vary
    between ``size`` and twice it, so a reader meets the mix a real folder has. With ``query``
    > 0 the classes go to ``root/support/`` and the last ``query`` images of each class to
    ``root/query/<class>/`` instead: a support set and labelled images to try ``adapt`` on.
    """
    folder = Path(root)
    if not 0 <= query < images:
        raise ValueError(f"query must leave support images: 0 <= query < images={images}")
    for label in range(classes):
        pattern = class_pattern(seed, label, size)
        name = f"pattern{label:02d}"
        for index in range(images):
            if query == 0:
                class_dir = folder / name
            else:
                class_dir = folder / ("query" if index >= images - query else "support") / name
            class_dir.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng([seed, label, index])
            image = pattern_image(pattern, rng)
            side = int(rng.integers(size, 2 * size + 1))
            image = image.resize((side, side), Image.Resampling.BILINEAR)
            if index % 3 == 2:
                image = image.convert("L")
            suffix, fmt = FORMATS[index % len(FORMATS)]
            image.save(class_dir / f"img{index:03d}.{suffix}", format=fmt)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastmeta.datasets.patterns",
        description="Write a folder of synthetic pattern classes (one sub-folder per class).",
    )
    parser.add_argument("out", type=Path, help="folder to write")
    parser.add_argument("--classes", type=int, default=30)
    parser.add_argument("--images", type=int, default=20, help="images per class")
    parser.add_argument("--size", type=int, default=32, help="smallest image side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="another seed, other classes")
    parser.add_argument(
        "--query", type=int, default=0,
        help="put this many images per class under OUT/query/ and the rest under OUT/support/",
    )  # fmt: skip
    args = parser.parse_args(argv)
    write_pattern_folder(args.out, args.classes, args.images, args.size, args.seed, args.query)
    print(f"wrote {args.classes} classes x {args.images} images to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

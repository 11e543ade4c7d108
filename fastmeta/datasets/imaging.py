"""Decode encoded images (PNG, JPEG, ...) into one uint8 array, in parallel worker processes.

Every loader decodes through :func:`decode_images`, so resizing (LANCZOS), mode conversion and
the size/mode checks behave the same for all datasets. A non-square image becomes square by
``DecodeSpec.resize``: squashed (the benchmarks' images, already square or nearly), centre-cropped
or padded (a user's folder; see docs/OWN_DATA.md). A file that cannot be decoded is reported
with its name and reason, never silently dropped: loaders raise on it, the folder loader skips
and reports it.
"""

from __future__ import annotations

import io
import itertools
import multiprocessing
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

CHANNELS = {"L": 1, "RGB": 3}
RESIZE_MODES = ("crop", "pad", "squash")
_CHUNK = 256
_MIN_FOR_POOL = 512


@dataclass(frozen=True)
class DecodeSpec:
    """How to turn one encoded image into a ``[C, size, size]`` uint8 array.

    Args:
        size: output side in pixels (square; LANCZOS resize when the source differs).
        mode: output mode, ``"L"`` (1 channel) or ``"RGB"`` (3 channels).
        resize: how a non-square source becomes square: ``"squash"`` resizes it whole to
            ``size x size`` (aspect ratio not kept), ``"crop"`` keeps its centre square,
            ``"pad"`` fits it whole and fills the borders with black.
        invert: replace each value v by 255 - v (Omniglot: strokes become bright).
        require_size: ``(width, height)`` the source must have, or None for any size.
        require_mode: PIL mode the source must have, or None for any mode.
    """

    size: int
    mode: str
    invert: bool = False
    require_size: tuple[int, int] | None = None
    require_mode: str | None = None
    resize: str = "squash"

    def __post_init__(self) -> None:
        if self.mode not in CHANNELS:
            raise ValueError(f"image mode must be one of {sorted(CHANNELS)}; got {self.mode!r}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(
                f"resize must be one of {', '.join(RESIZE_MODES)}; got {self.resize!r}"
            )
        if self.size < 1:
            raise ValueError(f"image size must be a positive number of pixels; got {self.size}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (CHANNELS[self.mode], self.size, self.size)


class ImageDecodeError(ValueError):
    """One image could not be used; ``reason`` says why (shown beside the file name)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def convert_image(image: Image.Image, spec: DecodeSpec) -> np.ndarray:
    """``image`` checked against ``spec``, converted, resized, as a ``[C, H, W]`` uint8 array."""
    if spec.require_size is not None and image.size != spec.require_size:
        width, height = spec.require_size
        raise ImageDecodeError(
            f"wrong size {image.size[0]}x{image.size[1]}, expected {width}x{height}"
        )
    if spec.require_mode is not None and image.mode != spec.require_mode:
        raise ImageDecodeError(f"wrong mode {image.mode}, expected {spec.require_mode}")
    if image.mode != spec.mode:
        image = image.convert(spec.mode)
    if image.size != (spec.size, spec.size):
        image = _square(image, spec.size, spec.resize)
    array = np.asarray(image, dtype=np.uint8)
    if spec.invert:
        array = 255 - array
    chw: np.ndarray = array.reshape(spec.size, spec.size, -1).transpose(2, 0, 1)
    return chw


def _square(image: Image.Image, size: int, resize: str) -> Image.Image:
    """``image`` as ``size x size``: squashed, centre-cropped or padded (see DecodeSpec)."""
    width, height = image.size
    if resize == "squash" or width == height:
        return image.resize((size, size), Image.Resampling.LANCZOS)
    if resize == "crop":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        square = image.crop((left, top, left + side, top + side))
        return square.resize((size, size), Image.Resampling.LANCZOS)
    scale = size / max(width, height)
    inner = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas = Image.new(image.mode, (size, size))
    canvas.paste(image.resize(inner, Image.Resampling.LANCZOS),
                 ((size - inner[0]) // 2, (size - inner[1]) // 2))  # fmt: skip
    return canvas


def decode_bytes(data: bytes, spec: DecodeSpec) -> np.ndarray:
    """Decode one encoded image; raises :class:`ImageDecodeError` saying why it is unusable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return convert_image(image, spec)
    except UnidentifiedImageError as error:
        raise ImageDecodeError("not an image (format not recognised)") from error
    except ImageDecodeError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"corrupt image ({error})") from error


def default_workers() -> int:
    """Worker processes for decoding: the CPUs this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


@dataclass
class Decoded:
    """Result of :func:`decode_images`: the good images, their names, and the failures."""

    images: np.ndarray
    names: list[str]
    failures: list[tuple[str, str]]


def decode_images(
    items: Iterable[tuple[str, bytes]],
    spec: DecodeSpec,
    count: int | None = None,
    workers: int | None = None,
) -> Decoded:
    """Decode ``(name, encoded bytes)`` pairs into ``images [M, C, H, W]`` uint8.

    ``names[i]`` is the name of ``images[i]`` (input order is kept); ``failures`` lists
    ``(name, reason)`` for every item that could not be used. With ``count`` known the output is
    preallocated; with several workers, chunks are decoded in a process pool.
    """
    workers = default_workers() if workers is None else max(1, workers)
    chunks = ((spec, chunk) for chunk in _chunked(items, _CHUNK))
    use_pool = workers > 1 and (count is None or count >= _MIN_FOR_POOL)
    if use_pool:
        with multiprocessing.get_context().Pool(workers) as pool:
            return _collect(pool.imap(_decode_chunk, chunks), spec, count)
    return _collect(map(_decode_chunk, chunks), spec, count)


def _chunked(items: Iterable[tuple[str, bytes]], size: int) -> Iterator[list[tuple[str, bytes]]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _decode_chunk(
    job: tuple[DecodeSpec, list[tuple[str, bytes]]],
) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    spec, chunk = job
    arrays, names, failures = [], [], []
    for name, data in chunk:
        try:
            arrays.append(decode_bytes(data, spec))
            names.append(name)
        except ImageDecodeError as error:
            failures.append((name, error.reason))
    stacked = np.stack(arrays) if arrays else np.empty((0, *spec.shape), np.uint8)
    return stacked, names, failures


def _collect(
    results: Iterable[tuple[np.ndarray, list[str], list[tuple[str, str]]]],
    spec: DecodeSpec,
    count: int | None,
) -> Decoded:
    out = np.empty((count, *spec.shape), np.uint8) if count is not None else None
    parts, names, failures = [], [], []
    filled = 0
    # a bar on a terminal (the first decode of a large dataset takes a while); none in logs
    bar = tqdm(total=count, desc="decoding images", unit="img", file=sys.stderr, disable=None)
    for images, good_names, bad in results:
        bar.update(len(images) + len(bad))
        if out is not None:
            out[filled : filled + len(images)] = images
        else:
            parts.append(images)
        filled += len(images)
        names.extend(good_names)
        failures.extend(bad)
    bar.close()
    if out is not None:
        images = out[:filled]
    else:
        images = np.concatenate(parts) if parts else np.empty((0, *spec.shape), np.uint8)
    return Decoded(images, names, failures)


def convert_arrays(images: np.ndarray, spec: DecodeSpec) -> np.ndarray:
    """``[N, H, W, C]`` uint8 arrays (C = 1 or 3) as ``[N, C', size, size]`` per ``spec``.

    Images already of the requested size and channels are only transposed (no resampling).
    """
    channels = images.shape[3]
    if images.shape[1:3] == (spec.size, spec.size) and channels == spec.shape[0]:
        out = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        return 255 - out if spec.invert else out
    out = np.empty((len(images), *spec.shape), np.uint8)
    for i, array in enumerate(images):
        pixels = array[..., 0] if channels == 1 else np.ascontiguousarray(array)
        out[i] = convert_image(Image.fromarray(pixels), spec)
    return out

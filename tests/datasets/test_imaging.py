"""Making a non-square image square: squashed, centre-cropped or padded, then resized."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fastmeta.datasets.imaging import DecodeSpec, convert_image


def stripes() -> Image.Image:
    """A 60x20 (wide) grey image: a black left third, a white middle, a grey right third."""
    pixels = np.zeros((20, 60), np.uint8)
    pixels[:, 20:40] = 255
    pixels[:, 40:] = 128
    return Image.fromarray(pixels)


def test_crop_keeps_the_centre_square() -> None:
    out = convert_image(stripes(), DecodeSpec(10, "L", resize="crop"))
    assert out.shape == (1, 10, 10) and (out == 255).all()  # only the white middle is left


def near(values: np.ndarray, target: int) -> bool:
    """Equal to ``target`` but for LANCZOS ringing beside an edge."""
    return bool((np.abs(values.astype(int) - target) <= 12).all())


def test_pad_keeps_the_whole_image_with_black_borders() -> None:
    out = convert_image(stripes(), DecodeSpec(12, "L", resize="pad"))[0]
    assert (out[:4] == 0).all() and (out[8:] == 0).all()  # a 12x4 image centred: rows 4..7
    band = out[4:8]
    assert near(band[:, :3], 0) and near(band[:, 5:7], 255) and near(band[:, 9:], 128)


def test_squash_keeps_every_column_in_the_square() -> None:
    out = convert_image(stripes(), DecodeSpec(12, "L"))[0]  # the default: as before
    assert near(out[:, :3], 0) and near(out[:, 5:7], 255) and near(out[:, 9:], 128)


def test_square_images_are_resized_the_same_by_every_mode() -> None:
    square = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 30), np.uint8))
    outs = [convert_image(square, DecodeSpec(8, "L", resize=m)) for m in ("crop", "pad", "squash")]
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="resize must be one of crop, pad, squash; got 'fit'"):
        DecodeSpec(8, "L", resize="fit")

"""The backbone's input inside the network: grey repeated to three channels, resized to the
backbone's size, normalised by its statistics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastmeta.backbones.network import InputSpec, Preprocess


def test_preprocess_repeats_grey_resizes_and_normalises():
    spec = InputSpec((8, 6), (0.5, 0.4, 0.3), (0.2, 0.3, 0.4))
    x = torch.rand(2, 1, 12, 12)
    expected = F.interpolate(
        x.repeat(1, 3, 1, 1), size=(8, 6), mode="bilinear", align_corners=False, antialias=True
    )
    expected = (expected - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor(
        [0.2, 0.3, 0.4]
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(Preprocess(spec)(x), expected)


def test_preprocess_leaves_the_size_when_it_matches():
    spec = InputSpec((4, 4), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    x = torch.rand(3, 3, 4, 4)
    torch.testing.assert_close(Preprocess(spec)(x), x)


def test_a_bad_spec_is_refused():
    with pytest.raises(ValueError, match="one positive std per mean"):
        InputSpec((4, 4), (0.5, 0.5), (0.2,))

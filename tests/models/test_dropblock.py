"""DropBlock: identity in evaluation; in training, square blocks of zeros covering about the
asked fraction, the rest rescaled; and ResNet-12 built with it from a run config."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastmeta.config import apply_overrides
from fastmeta.models.dropblock import DropBlock
from fastmeta.models.resnet12 import ResNet12
from fastmeta.run.build import build_model
from fastmeta.run_config import RunConfig


def test_identity_in_evaluation_and_at_rate_zero():
    x = torch.randn(2, 3, 9, 9)
    assert torch.equal(DropBlock(0.3).eval()(x), x)
    assert torch.equal(DropBlock(0.0)(x), x)


def test_drops_about_the_rate_in_whole_blocks_and_rescales_the_rest():
    torch.manual_seed(0)
    x = torch.ones(8, 64, 20, 20)
    out = DropBlock(0.1, block_size=5)(x)
    zeros = out == 0
    assert abs(zeros.float().mean().item() - 0.1) < 0.02  # overlaps make it slightly less
    kept = out[~zeros]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - zeros.float().mean())))
    # every zero lies in a 5x5 square of zeros inside the map
    covered = -F.max_pool2d(-zeros.float(), 5, stride=1)  # 1 where a whole 5x5 window is zero
    grown = F.max_pool2d(F.pad(covered, [4, 4, 4, 4]), 5, stride=1)
    assert torch.equal(grown.bool(), zeros)


def test_blocks_larger_than_the_map_are_clipped():
    torch.manual_seed(0)
    out = DropBlock(0.5, block_size=7)(torch.ones(64, 4, 3, 3))
    assert out.shape == (64, 4, 3, 3)
    maps = out.flatten(-2)
    assert ((maps == 0).all(-1) | (maps != 0).all(-1)).all()  # a 3x3 map is dropped whole or kept


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="drop_rate must be in"):
        DropBlock(1.0)
    with pytest.raises(ValueError, match="positive odd"):
        DropBlock(0.1, block_size=4)


def test_resnet12_uses_it_after_the_last_two_blocks_from_a_run_config():
    config = apply_overrides(RunConfig(), [
        "algorithm.name=protonet", "model.name=resnet12", "model.channels=[4,6,8,10]",
        "model.drop_rate=0.1",
    ])  # fmt: skip
    model = build_model(config, (3, 32, 32))
    assert isinstance(model, ResNet12)
    assert [type(m).__name__ for m in model.blocks].count("DropBlock") == 2
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))
    conv = apply_overrides(config, ["model.name=conv4"])
    with pytest.raises(ValueError, match=r"applies to model\.name=resnet12"):
        build_model(conv, (3, 32, 32))

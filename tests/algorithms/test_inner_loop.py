"""The settings every inner-loop learner shares are checked and defaulted in one place."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastmeta.algorithms import CAVIA, IMAML, MAML, MAMLPlusPlus
from fastmeta.algorithms.inner_loop import default_loss
from fastmeta.models.film import ContextModel


def learners(**settings):
    yield MAML(nn.Linear(3, 2), **settings)
    yield IMAML(nn.Linear(3, 2), **settings)
    yield MAMLPlusPlus(nn.Linear(3, 2), **settings)
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    yield CAVIA(ContextModel(net, "0", channels=4, context_dim=2), context_dim=2, **settings)


def test_defaults_are_shared():
    for learner in learners(steps=2):
        assert learner.test_steps == 2 and learner.loss_fn is default_loss
        assert learner.strategy == "auto" and learner.chunk_size is None


@pytest.mark.parametrize("cls,minimum", [(MAML, 0), (IMAML, 1), (MAMLPlusPlus, 1)])
def test_too_few_steps_are_refused_with_the_learner_named(cls, minimum):
    with pytest.raises(ValueError, match=f"{cls.__name__} needs inner steps >= {minimum}"):
        cls(nn.Linear(3, 2), steps=minimum - 1)
    with pytest.raises(ValueError, match="test_steps=-1"):
        cls(nn.Linear(3, 2), steps=1, test_steps=-1)


def test_unknown_strategy_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="choose one of auto, vmap, loop"):
        MAML(nn.Linear(3, 2), strategy="fast")


def test_default_loss_is_cross_entropy_for_labels_and_mse_for_values():
    logits, labels = torch.randn(2, 4, 3), torch.tensor([[0, 1, 2, 1], [2, 2, 0, 1]])
    torch.testing.assert_close(
        default_loss(logits, labels), F.cross_entropy(logits.reshape(8, 3), labels.reshape(8))
    )
    values, targets = torch.randn(5, 1), torch.randn(5, 1)
    torch.testing.assert_close(default_loss(values, targets), F.mse_loss(values, targets))

"""The familiar object API: clone() / adapt(loss) / learner(x), on the same engine."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastmeta.algorithms import MAML
from fastmeta.models import MLP, Conv4
from tests.reference import random_classification_batch, random_regression_batch


def object_api_gradient(maml: MAML, batch, steps: int, loss_fn) -> dict:
    maml.zero_grad()
    total = 0.0
    for task in batch:
        learner = maml.clone()
        for _ in range(steps):
            learner.adapt(loss_fn(learner(task.support_x), task.support_y))
        total = total + loss_fn(learner(task.query_x), task.query_y)
    (total / batch.num_tasks).backward()
    return {n: p.grad.clone() for n, p in maml.named_parameters()}


def batched_gradient(maml: MAML, batch) -> dict:
    maml.zero_grad()
    maml(batch).loss.backward()
    return {n: p.grad.clone() for n, p in maml.named_parameters()}


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("steps", [1, 2])
def test_object_api_equals_batched_path_conv_bn(first_order, steps):
    torch.manual_seed(0)
    maml = MAML(Conv4(1, 3, hidden=6, blocks=2), lr=0.3, steps=steps, first_order=first_order,
                strategy="vmap")  # fmt: skip
    batch = random_classification_batch()
    expected = batched_gradient(maml, batch)
    actual = object_api_gradient(maml, batch, steps, F.cross_entropy)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=1e-6)


def test_object_api_equals_batched_path_mlp_with_per_step_lr():
    torch.manual_seed(0)
    maml = MAML(MLP(1, [8], 1), lr=[0.1, 0.05], steps=2, strategy="vmap")
    batch = random_regression_batch()
    expected = batched_gradient(maml, batch)
    actual = object_api_gradient(maml, batch, 2, F.mse_loss)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=1e-6)


def test_learner_leaves_meta_parameters_untouched():
    torch.manual_seed(0)
    model = MLP(1, [8], 1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    learner = MAML(model, lr=0.5).clone()
    x = torch.randn(4, 1)
    learner.adapt(F.mse_loss(learner(x), torch.ones(4, 1)))
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name])
    assert not torch.allclose(
        dict(learner.named_parameters())["head.weight"], before["head.weight"]
    )


def test_clone_of_learner_adapts_independently():
    torch.manual_seed(0)
    learner = MAML(MLP(1, [8], 1), lr=0.5).clone()
    twin = learner.clone()
    x = torch.randn(4, 1)
    learner.adapt(F.mse_loss(learner(x), torch.ones(4, 1)))
    torch.testing.assert_close(twin(x), MAML(learner.model).model(x))


def test_adapt_rejects_loss_from_the_original_model():
    maml = MAML(MLP(1, [8], 1), lr=0.5)
    learner = maml.clone()
    x = torch.randn(4, 1)
    with pytest.raises(ValueError, match=r"learner\(x\)"):
        learner.adapt(F.mse_loss(torch.randn(4, 1, requires_grad=True), x))


def test_adapt_rejects_loss_without_grad():
    learner = MAML(MLP(1, [8], 1), lr=0.5).clone()
    x = torch.randn(4, 1)
    with torch.no_grad():
        loss = F.mse_loss(learner(x), x)
    with pytest.raises(ValueError, match="does not require grad"):
        learner.adapt(loss)


class PartlyUsed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(2, 2)
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        return self.used(x)


def test_unused_parameters_stay_unchanged_and_get_no_meta_gradient():
    torch.manual_seed(0)
    maml = MAML(PartlyUsed(), lr=0.1, strategy="vmap")
    learner = maml.clone()
    x = torch.randn(3, 2)
    learner.adapt(F.mse_loss(learner(x), x))
    assert learner.params["unused.weight"] is maml.model.unused.weight
    batch = random_regression_batch(features=2)
    batch = type(batch)(batch.support_x, batch.support_x, batch.query_x, batch.query_x)
    maml(batch).loss.backward()
    grad = maml.model.unused.weight.grad
    assert grad is None or torch.count_nonzero(grad) == 0
    assert maml.model.used.weight.grad is not None


def test_frozen_parameters_never_adapt():
    torch.manual_seed(0)
    model = MLP(1, [8], 1)
    model.body[0].weight.requires_grad_(False)
    learner = MAML(model, lr=0.5).clone()
    x = torch.randn(4, 1)
    learner.adapt(F.mse_loss(learner(x), torch.ones(4, 1)))
    assert learner.params["body.0.weight"] is model.body[0].weight
    assert learner.params["head.weight"] is not model.head.weight


def test_maml_called_with_a_tensor_runs_the_model():
    model = MLP(1, [8], 1)
    x = torch.randn(5, 1)
    torch.testing.assert_close(MAML(model)(x), model(x))


class Masked(nn.Module):
    """A forward with a keyword-only argument."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x, *, mask):
        return self.linear(x) * mask


def test_learner_passes_keyword_arguments_to_the_model():
    torch.manual_seed(0)
    maml = MAML(Masked(), lr=0.1)
    x, mask = torch.randn(4, 3), torch.tensor([[1.0, 0.0]])
    learner = maml.clone()
    torch.testing.assert_close(learner(x, mask=mask), maml(x, mask=mask))
    learner.adapt(learner(x, mask=mask).pow(2).sum())
    assert not torch.allclose(learner(x, mask=mask), maml(x, mask=mask))


class Dropped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(50, 50)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        return self.dropout(self.linear(x))


def test_learner_train_and_eval_set_its_own_mode_only():
    torch.manual_seed(0)
    model = Dropped()
    learner = MAML(model, lr=0.1).clone()
    x = torch.ones(2, 50)
    assert learner.training and (learner(x) == 0).any()  # follows the model: training
    learner.eval()
    assert not learner.training and not (learner(x) == 0).any()
    assert model.training and model.dropout.training  # the shared network is unchanged
    model.eval()
    assert learner.clone().train().training and (learner.clone().train()(x) == 0).any()
    assert not model.training and not model.dropout.training


def test_learner_to_and_state_dict_keep_the_meta_gradient(float64):
    torch.manual_seed(0)
    model = MLP(2, [4], 1).float()
    maml = MAML(model, lr=0.5)
    learner = maml.clone().to(torch.float64)
    x = torch.randn(5, 2)
    learner.adapt(learner(x).pow(2).mean())
    assert all(p.dtype == torch.float64 for p in learner.parameters())
    state = learner.state_dict()
    assert list(state) == list(model.state_dict())
    assert not any(t.requires_grad for t in state.values())
    torch.testing.assert_close(state["head.weight"], learner.params["head.weight"].detach())
    assert not torch.equal(state["head.weight"], model.head.weight.double())
    learner(x).sum().backward()
    assert model.head.weight.grad is not None and model.head.weight.grad.dtype == torch.float32

"""learn2learn's MAML, MetaSGD and GBML as documented: signatures and argument order, what
clone() and adapt() return and refuse, and meta-gradients against plain autograd in float64."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fastmeta.compat.learn2learn as l2l
from tests.reference import meta_gradient, random_classification_batch


def parameters_of(function) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(function).parameters.values()]


def test_signatures_and_argument_order_are_learn2learn_s():
    empty = inspect.Parameter.empty
    algorithms = l2l.algorithms
    assert parameters_of(algorithms.MAML) == [
        ("model", empty), ("lr", empty), ("first_order", False), ("allow_unused", None),
        ("allow_nograd", False),
    ]  # fmt: skip
    flags = [("first_order", None), ("allow_unused", None), ("allow_nograd", None)]
    assert parameters_of(algorithms.MAML.clone)[1:] == flags
    assert parameters_of(algorithms.MAMLLearner.adapt)[1:] == [("loss", empty), *flags]
    assert parameters_of(algorithms.MetaSGD) == [
        ("model", empty), ("lr", 1.0), ("first_order", False), ("lrs", None),
    ]  # fmt: skip
    assert parameters_of(algorithms.GBML)[:7] == [
        ("module", empty), ("transform", empty), ("lr", 1.0), ("adapt_transform", False),
        ("first_order", False), ("allow_unused", False), ("allow_nograd", False),
    ]  # fmt: skip
    assert parameters_of(algorithms.GBMLLearner.adapt)[1:] == [
        ("loss", empty), ("first_order", None), ("allow_nograd", None), ("allow_unused", None),
    ]  # fmt: skip


def test_the_third_positional_argument_is_first_order():
    maml = l2l.algorithms.MAML(nn.Linear(2, 2), 0.5, True)
    assert maml.first_order is True and maml.lr == 0.5
    assert maml.allow_unused is False and maml.allow_nograd is False
    assert l2l.algorithms.MAML(nn.Linear(2, 2), 0.5, allow_nograd=True).allow_unused is True
    clone = maml.clone()
    assert clone.first_order is True and maml.clone(first_order=False).first_order is False


class ConvNet(nn.Module):
    """Conv + BatchNorm (running statistics tracked) + a head: the usual few-shot shapes."""

    def __init__(self, ways: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, ways)

    def forward(self, x):
        return self.head(self.norm(self.conv(x)).relu().mean(dim=(2, 3)))


def clone_loop_gradient(wrapper, model, batch, steps: int) -> dict[str, torch.Tensor]:
    """learn2learn's loop: a clone per task, adapt on the support set, query loss backward."""
    model.zero_grad()
    for task in batch:
        learner = wrapper.clone()
        for _ in range(steps):
            learner.adapt(F.cross_entropy(learner(task.support_x), task.support_y))
        (F.cross_entropy(learner(task.query_x), task.query_y) / batch.num_tasks).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("steps", [1, 2])
def test_clone_and_adapt_give_the_plain_autograd_meta_gradient(float64, first_order, steps):
    torch.manual_seed(0)
    model = ConvNet()
    maml = l2l.algorithms.MAML(model, 0.4, first_order)
    batch = random_classification_batch(shape=(1, 6, 6))
    actual = clone_loop_gradient(maml, model, batch, steps)
    expected = meta_gradient(model, batch, 0.4, steps, first_order)
    for name, grad in expected.items():
        torch.testing.assert_close(actual[name], grad, rtol=1e-9, atol=1e-12)


def test_first_order_differs_from_second_order(float64):
    torch.manual_seed(0)
    model = ConvNet()
    batch = random_classification_batch(shape=(1, 6, 6))
    second = clone_loop_gradient(l2l.algorithms.MAML(model, 0.4), model, batch, 1)
    first = clone_loop_gradient(l2l.algorithms.MAML(model, 0.4, True), model, batch, 1)
    assert not torch.allclose(first["conv.weight"], second["conv.weight"])


def test_the_batched_path_equals_the_clone_loop(float64):
    torch.manual_seed(0)
    model = ConvNet()
    maml = l2l.algorithms.MAML(model, 0.4)
    batch = random_classification_batch(shape=(1, 6, 6))
    model.zero_grad()
    maml(batch).loss.backward()
    batched = {name: p.grad.clone() for name, p in model.named_parameters()}
    loop = clone_loop_gradient(maml, model, batch, 1)
    for name, grad in loop.items():
        torch.testing.assert_close(batched[name], grad, rtol=1e-9, atol=1e-12)


def test_metasgd_learns_a_rate_per_weight_with_the_reference_gradient(float64):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    metasgd = l2l.algorithms.MetaSGD(model, lr=0.3)
    assert [lr.shape for lr in metasgd.lrs] == [p.shape for p in model.parameters()]
    assert all(torch.all(lr == 0.3) for lr in metasgd.lrs)
    with torch.no_grad():
        for lr in metasgd.lrs:
            lr.uniform_(0.1, 0.5)
    x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
    qx, qy = torch.randn(5, 3), torch.randint(0, 2, (5,))
    learner = metasgd.clone()
    assert isinstance(learner, l2l.algorithms.MetaSGDLearner) and len(learner.lrs) == 4
    learner.adapt(F.cross_entropy(learner(x), y))
    actual = torch.autograd.grad(F.cross_entropy(learner(qx), qy), list(metasgd.parameters()))

    params, lrs = list(model.parameters()), list(metasgd.lrs)
    names = [name for name, _ in model.named_parameters()]
    support = F.cross_entropy(
        torch.func.functional_call(model, dict(model.named_parameters()), x), y
    )
    grads = torch.autograd.grad(support, params, create_graph=True)
    fast = {n: p - lr * g for n, p, lr, g in zip(names, params, lrs, grads, strict=True)}
    query = F.cross_entropy(torch.func.functional_call(model, fast, qx), qy)
    expected = torch.autograd.grad(query, list(metasgd.parameters()))
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)


def reference_gbml(model, update, lr, x, y, qx, qy, steps, adapt_transform):
    """GBML's meta-gradient by hand: p <- p - lr * T(grad) with the transforms' own tensors,
    the transforms stepped by the loss's gradient from the second step on."""
    names = [name for name, _ in model.named_parameters()]
    fast = dict(model.named_parameters())
    trans = dict(update.named_parameters())
    for step in range(steps):
        loss = F.cross_entropy(torch.func.functional_call(model, fast, x), y)
        if adapt_transform and step > 0:
            grads = torch.autograd.grad(loss, list(trans.values()), create_graph=True,
                                        retain_graph=True, allow_unused=True)  # fmt: skip
            trans = {n: t if g is None else t - lr * g
                     for (n, t), g in zip(trans.items(), grads, strict=True)}  # fmt: skip
        grads = torch.autograd.grad(loss, [fast[n] for n in names], create_graph=True)
        for i, (name, grad) in enumerate(zip(names, grads, strict=True)):
            sub = update.transforms_modules[update.transforms_indices[i]]
            prefix = f"transforms_modules.{update.transforms_indices[i]}."
            own = {k[len(prefix) :]: v for k, v in trans.items() if k.startswith(prefix)}
            fast[name] = fast[name] - lr * torch.func.functional_call(sub, own, grad)
    query = F.cross_entropy(torch.func.functional_call(model, fast, qx), qy)
    return query


@pytest.mark.parametrize("adapt_transform", [False, True])
def test_gbml_meta_gradient_equals_plain_autograd(float64, adapt_transform):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3))
    gbml = l2l.algorithms.GBML(model, l2l.optim.MetaCurvatureTransform, lr=0.2,
                               adapt_transform=adapt_transform)  # fmt: skip
    with torch.no_grad():
        for p in gbml.compute_update.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x, y = torch.randn(6, 1, 4, 4), torch.randint(0, 3, (6,))
    qx, qy = torch.randn(5, 1, 4, 4), torch.randint(0, 3, (5,))
    learner = gbml.clone()
    for _ in range(2):
        learner.adapt(F.cross_entropy(learner(x), y))
    actual = torch.autograd.grad(F.cross_entropy(learner(qx), qy), list(gbml.parameters()))
    query = reference_gbml(model, gbml.compute_update, 0.2, x, y, qx, qy, 2, adapt_transform)
    expected = torch.autograd.grad(query, list(gbml.parameters()))
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-12)
    assert len(list(gbml.parameters())) == 4 + 3 + 3 + 1  # the model's, then the transforms'


class TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(3, 2)
        self.unused = nn.Linear(3, 2)

    def forward(self, x):
        return self.used(x)


def test_frozen_and_unused_parameters_need_learn2learn_s_flags():
    x, y = torch.randn(4, 3), torch.randint(0, 2, (4,))
    model = TwoHeads()
    learner = l2l.algorithms.MAML(model, 0.1).clone()
    with pytest.raises(ValueError, match=r"does not use parameter\(s\) \['unused.weight'"):
        learner.adapt(F.cross_entropy(learner(x), y))
    learner = l2l.algorithms.MAML(model, 0.1, allow_unused=True).clone()
    learner.adapt(F.cross_entropy(learner(x), y))
    assert learner.params["unused.weight"] is model.unused.weight
    assert learner.params["used.weight"] is not model.used.weight
    model.used.bias.requires_grad_(False)
    with pytest.raises(ValueError, match=r"\['used.bias'\] do not require grad; pass allow_nograd"):
        learner = l2l.algorithms.MAML(model, 0.1, allow_unused=True).clone()
        learner.adapt(F.cross_entropy(learner(x), y))
    learner = l2l.algorithms.MAML(model, 0.1, allow_nograd=True).clone()
    learner.adapt(F.cross_entropy(learner(x), y))
    assert learner.params["used.bias"] is model.used.bias


def test_mistakes_raise_errors_that_say_what_to_do():
    model = nn.Linear(3, 2)
    maml = l2l.algorithms.MAML(model, 0.1, allow_unused=True)
    x, y = torch.randn(4, 3), torch.randint(0, 2, (4,))
    with pytest.raises(ValueError, match=r"learner\(x\) \(the clone\), not from the original"):
        maml.clone().adapt(F.cross_entropy(torch.randn(4, 2, requires_grad=True), y))
    with pytest.raises(TypeError, match=r"adapt a clone instead: learner = maml.clone\(\)"):
        maml.adapt(F.cross_entropy(maml(x), y))
    with pytest.raises(ValueError, match="2 learning rates for 1 parameters"):
        l2l.algorithms.MetaSGD(nn.Linear(3, 2, bias=False), lrs=[torch.ones(2, 3)] * 2).clone()


def test_a_clone_behaves_like_learn2learn_s_cloned_module():
    torch.manual_seed(0)
    model = ConvNet()
    maml = l2l.algorithms.MAML(model, 0.5)
    assert maml.module is model
    x, y = torch.randn(6, 1, 5, 5), torch.randint(0, 3, (6,))
    learner = maml.clone()
    seen = int(model.norm.num_batches_tracked)
    before = model.norm.running_mean.clone()
    learner.adapt(F.cross_entropy(learner(x), y))
    # as in learn2learn, a clone shares (and in training mode updates) the running statistics
    assert int(model.norm.num_batches_tracked) == seen + 1
    assert not torch.equal(model.norm.running_mean, before)
    view = learner.module
    assert isinstance(view, ConvNet) and view.conv.weight is learner.params["conv.weight"]
    torch.testing.assert_close(view(x), learner(x))
    assert [n for n, _ in learner.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert list(learner.state_dict()) == list(model.state_dict())
    twin = learner.clone()
    twin.adapt(F.cross_entropy(twin(x), y))
    assert not torch.equal(twin.params["head.weight"], learner.params["head.weight"])
    learner.eval()
    assert not learner.training and model.training and not learner.module.training
    eval_out = learner(x)
    model.eval()
    torch.testing.assert_close(eval_out, torch.func.functional_call(model, learner.params, x))


def test_maml_update_and_meta_sgd_update_on_learners_and_modules():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    learner = l2l.algorithms.MAML(model, 0.1).clone()
    grads = [torch.ones(2, 3), None]
    assert l2l.algorithms.maml_update(learner, 0.5, grads) is learner
    torch.testing.assert_close(learner.params["weight"], model.weight - 0.5)
    assert learner.params["bias"] is model.bias
    clone = l2l.clone_module(model)
    l2l.algorithms.meta_sgd_update(clone, [0.5, 2.0], [torch.ones(2, 3), torch.ones(2)])
    torch.testing.assert_close(clone.weight, model.weight - 0.5)
    torch.testing.assert_close(clone.bias, model.bias - 2.0)
    with pytest.raises(ValueError, match="1 gradients and 1 learning rates for 2 parameters"):
        l2l.algorithms.maml_update(learner, 0.1, [torch.ones(2, 3)])


class SharedBlock(nn.Module):
    """A submodule registered under two names, and a weight tied between two layers."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Linear(3, 3)
        self.layers = nn.Sequential(self.block, nn.Tanh())
        self.out = nn.Linear(3, 3)
        self.back = nn.Linear(3, 3)
        self.back.weight = self.out.weight

    def forward(self, x):
        return self.back(self.out(self.layers(x)))


def test_shared_submodules_and_tied_weights_adapt_without_touching_the_network(float64):
    torch.manual_seed(0)
    model = SharedBlock()
    originals = {name: p for name, p in model.named_parameters(remove_duplicate=False)}
    x, qx = torch.randn(5, 3), torch.randn(4, 3)
    learner = l2l.algorithms.MAML(model, 0.3).clone()
    for _ in range(2):
        learner.adapt(learner(x).pow(2).mean())
    query = learner(qx).pow(2).mean()
    assert all(p is originals[n] for n, p in model.named_parameters(remove_duplicate=False))
    actual = torch.autograd.grad(query, list(model.parameters()))

    def forward(p, inputs):  # the network written out (functional_call mishandles it)
        hidden = F.linear(torch.tanh(F.linear(inputs, p["block.weight"], p["block.bias"])),
                          p["out.weight"], p["out.bias"])  # fmt: skip
        return F.linear(hidden, p["out.weight"], p["back.bias"])

    params = dict(model.named_parameters())
    assert list(params) == ["block.weight", "block.bias", "out.weight", "out.bias", "back.bias"]
    fast = dict(params)
    for _ in range(2):
        grads = torch.autograd.grad(forward(fast, x).pow(2).mean(), list(fast.values()),
                                    create_graph=True)  # fmt: skip
        fast = {n: p - 0.3 * g for (n, p), g in zip(fast.items(), grads, strict=True)}
    expected = torch.autograd.grad(forward(fast, qx).pow(2).mean(), list(params.values()))
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-12)

"""learn2learn's ``nn`` and ``optim``: each layer and transform against its definition written
out by hand (explicit Kronecker products, the hypergradient of one step), and the heads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fastmeta.compat.learn2learn as l2l
from fastmeta.algorithms.metaoptnet import svm_head


def test_kronecker_linear_is_the_kronecker_product_of_its_factors(float64):
    torch.manual_seed(0)
    n, m = 3, 2
    layer = l2l.nn.KroneckerLinear(n, m, psd=True)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn_like(p))
    left, right = layer.left.t() @ layer.left, layer.right.t() @ layer.right
    x = torch.randn(n * m)
    matrix = torch.kron(
        right.t().contiguous(), left
    )  # vec(L X R) = (R^T (x) L) vec(X), column-major vec
    expected = matrix @ x + layer.bias.t().reshape(-1)
    torch.testing.assert_close(layer(x), expected)
    batch = torch.randn(4, n, m)
    torch.testing.assert_close(layer(batch), left @ batch @ right + layer.bias)
    with pytest.raises(ValueError, match=r"inputs end in shape \(3, 2\)"):
        layer(torch.randn(4, 2, 3))
    rnn, lstm = l2l.nn.KroneckerRNN(n, m), l2l.nn.KroneckerLSTM(n, m)
    out, hidden = rnn(batch, torch.zeros(4, n, m))
    assert out.shape == hidden.shape == (4, n, m)
    h, (h2, c) = lstm(batch, (torch.zeros(4, n, m), torch.zeros(4, n, m)))
    assert h.shape == c.shape == (4, n, m) and h is h2


def test_transforms_start_as_the_identity_and_keep_the_gradient_shape():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    grad = torch.randn_like(conv.weight)
    for factory in (
        l2l.optim.KroneckerTransform(l2l.nn.KroneckerLinear),
        l2l.optim.MetaCurvatureTransform,
    ):
        transform = factory(conv.weight)
        torch.testing.assert_close(transform(grad), grad)
    dense = l2l.optim.ModuleTransform(nn.Linear)(conv.bias)
    assert dense(torch.randn(4)).shape == (4,)
    with pytest.raises(ValueError, match="1-, 2- or 4-dimensional"):
        l2l.optim.MetaCurvatureTransform(torch.zeros(2, 2, 2))


def test_meta_curvature_multiplies_along_every_dimension(float64):
    torch.manual_seed(0)
    weight = torch.zeros(4, 3, 2, 2)
    transform = l2l.optim.MetaCurvatureTransform(weight, lr=0.5)
    with torch.no_grad():
        for p in transform.parameters():
            p.copy_(torch.randn_like(p))
    grad = torch.randn_like(weight)
    operator = torch.kron(
        torch.kron(transform.mc_in, transform.mc_out.t().contiguous()), transform.mc_f
    )
    expected = 0.5 * (operator @ grad.reshape(-1)).reshape(grad.shape)
    torch.testing.assert_close(transform(grad), expected)
    fc = l2l.optim.MetaCurvatureTransform(torch.zeros(4, 3))
    g = torch.randn(4, 3)
    torch.testing.assert_close(fc(g), fc.mc_in @ g @ fc.mc_out)


def test_parameter_update_transforms_each_gradient_and_handles_frozen_ones():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    scale = l2l.optim.TransformDictionary({model.weight: lambda p: l2l.nn.Scale(p.shape, 2.0)})
    update = l2l.optim.ParameterUpdate(model.parameters(), scale)
    assert update.transforms_indices == [0, None] and len(list(update.parameters())) == 1
    loss = model(torch.randn(5, 3)).pow(2).sum()
    grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    weight_update, bias_update = update(loss, model.parameters(), retain_graph=True)
    torch.testing.assert_close(weight_update, 2 * grads[0])
    torch.testing.assert_close(bias_update, grads[1])
    model.bias.requires_grad_(False)
    with pytest.raises(ValueError, match="do not require grad; pass allow_nograd=True"):
        update(loss, model.parameters(), retain_graph=True)
    assert update(loss, model.parameters(), allow_nograd=True)[1] is None
    with pytest.raises(ValueError, match=r"must return an nn\.Module or None"):
        l2l.optim.ParameterUpdate(model.parameters(), lambda p: 3)


def test_differentiable_sgd_steps_a_module_keeping_the_graph():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    clone = l2l.clone_module(model)
    grads = torch.autograd.grad(clone(torch.ones(1, 3)).sum(), list(clone.parameters()))
    l2l.optim.DifferentiableSGD(0.1)(clone, grads)
    torch.testing.assert_close(clone.weight, model.weight - 0.1)
    clone(torch.ones(1, 3)).sum().backward()
    assert model.weight.grad is not None


def test_learnable_optimizer_step_gives_the_hypergradient():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    metaopt = l2l.optim.LearnableOptimizer(model, lambda p: l2l.nn.Scale(alpha=1.0), lr=0.1)
    assert len(list(metaopt.parameters())) == 2  # one scale per parameter, not the model's
    x1, x2 = torch.randn(4, 3), torch.randn(4, 3)
    metaopt.zero_grad()
    model(x1).pow(2).mean().backward()
    first = [p.grad.detach().clone() for p in model.parameters()]
    before = [p.detach().clone() for p in model.parameters()]
    metaopt.step()
    for p, b, g in zip(model.parameters(), before, first, strict=True):
        torch.testing.assert_close(p, b - 0.1 * g)
    metaopt.zero_grad()
    model(x2).pow(2).mean().backward()
    second = [p.grad for p in model.parameters()]
    for transform, g1, g2 in zip(metaopt.transforms, first, second, strict=True):
        torch.testing.assert_close(transform.alpha.grad, (-0.1 * g1 * g2).sum().reshape(1))


def test_prototypical_classifier_scores_against_class_means():
    torch.manual_seed(0)
    support, labels = torch.randn(6, 4), torch.tensor([7, 3, 7, 3, 9, 9])
    queries = torch.randn(5, 4)
    classifier = l2l.nn.PrototypicalClassifier(support, labels)
    means = torch.stack([support[labels == c].mean(0) for c in (3, 7, 9)])  # sorted labels
    torch.testing.assert_close(classifier(queries), -torch.cdist(queries, means).pow(2))
    cosine = l2l.nn.PrototypicalClassifier(support, labels, distance="cosine")
    expected = F.normalize(queries, dim=1) @ F.normalize(means, dim=1).t()
    torch.testing.assert_close(cosine(queries), expected, atol=1e-6, rtol=1e-5)
    custom = l2l.nn.PrototypicalClassifier(support, labels, distance=lambda p, q: q @ p.t())
    torch.testing.assert_close(custom(queries), -(queries @ means.t()))
    with pytest.raises(RuntimeError, match=r"fit_\(support, labels\)"):
        l2l.nn.PrototypicalClassifier()(queries)
    with pytest.raises(ValueError, match="distance must be"):
        l2l.nn.PrototypicalClassifier(distance="manhattan")


def test_sv_classifier_is_metaoptnet_s_svm_head(float64):
    torch.manual_seed(0)
    support, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    queries = torch.randn(5, 4)
    classifier = l2l.nn.SVClassifier(support, labels, C_reg=0.1, max_iters=30)
    expected = svm_head(support[None], labels[None], queries[None], 3, C=0.1, max_iter=30)[0]
    assert classifier.qp_solution.shape == (6, 3)
    torch.testing.assert_close(classifier(queries), expected)
    assert (classifier(support).argmax(1) == labels).all()
    five_way = l2l.nn.SVClassifier(torch.randn(25, 16), torch.arange(5).repeat(5))  # defaults
    assert five_way(torch.randn(3, 16)).shape == (3, 5)


def test_small_modules_and_freezing():
    assert l2l.nn.Scale((2,), alpha=0.5)(torch.ones(2)).tolist() == [0.5, 0.5]
    assert l2l.nn.Flatten()(torch.zeros(3, 2, 2)).shape == (3, 4)
    assert l2l.nn.Lambda(lambda x, k: x * k)(torch.ones(1), k=3).item() == 3
    model = nn.Linear(2, 2)
    assert l2l.nn.freeze(model) is model and not any(p.requires_grad for p in model.parameters())
    assert all(p.requires_grad for p in l2l.nn.unfreeze(model).parameters())

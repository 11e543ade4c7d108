"""Fine-tuning heads against the same optimisation written out: a copy of the encoder and a
prototype-initialised linear head, SGD on the support images; the encoder passed in is left
unchanged. The linear probe on features against a plain SGD loop."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastmeta.algorithms.baseline import FineTuning
from fastmeta.heads.augment import augment
from fastmeta.heads.finetune import FineTune
from fastmeta.heads.linear import LinearProbe
from fastmeta.tasks import TaskBatch


def encoder():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 5)
    )


def batch(tasks=2):
    g = torch.Generator().manual_seed(1)
    sy = torch.arange(3).repeat_interleave(2).repeat(tasks, 1)
    qy = torch.arange(3).repeat(tasks, 1)
    return TaskBatch(
        torch.rand(tasks, 6, 1, 6, 6, generator=g),
        sy,
        torch.rand(tasks, 3, 1, 6, 6, generator=g),
        qy,
    )


def reference(model, sx, sy, qx, steps, lr, momentum, train_encoder):
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        z = model(sx)
        protos = torch.stack([z[sy == c].mean(0) for c in range(3)])
    w = (2 * protos).clone().requires_grad_()
    b = (-protos.pow(2).sum(1)).clone().requires_grad_()
    params = [w, b] + (list(model.parameters()) if train_encoder else [])
    for p in model.parameters():
        p.requires_grad_(train_encoder)
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    for _ in range(steps):
        loss = F.cross_entropy(model(sx) @ w.T + b, sy)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return model(qx) @ w.T + b


@pytest.mark.parametrize("train_encoder", [True, False])
def test_finetuning_matches_the_written_out_optimisation(train_encoder):
    net, b = encoder(), batch()
    before = copy.deepcopy(net.state_dict())
    head = FineTune(steps=7, lr=0.05, momentum=0.9, train_encoder=train_encoder, augmentations=())
    logits = head.adapt(net, b, 3)
    for t in range(2):
        expected = reference(
            net, b.support_x[t], b.support_y[t], b.query_x[t], 7, 0.05, 0.9, train_encoder
        )
        torch.testing.assert_close(logits[t], expected, atol=1e-5, rtol=1e-5)
    for key, value in net.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.requires_grad for p in net.parameters())


def test_no_steps_is_the_prototype_classifier():
    net, b = encoder(), batch(1)
    logits = FineTune(steps=0).adapt(net, b, 3)[0]
    with torch.no_grad():
        z, q = net.eval()(b.support_x[0]), net(b.query_x[0])
    protos = torch.stack([z[b.support_y[0] == c].mean(0) for c in range(3)])
    distances = -(q[:, None] - protos[None]).pow(2).sum(-1)
    # the same ranking: equal up to each query's |q|^2
    torch.testing.assert_close(
        logits - logits[:, :1], distances - distances[:, :1], atol=1e-4, rtol=0
    )


def test_augmentations_keep_the_shape_and_are_seeded():
    x = torch.rand(5, 3, 8, 8)
    first = augment(x, ("flip", "crop"), torch.Generator().manual_seed(0))
    again = augment(x, ("flip", "crop"), torch.Generator().manual_seed(0))
    assert first.shape == x.shape and torch.equal(first, again) and not torch.equal(first, x)
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        FineTune(augmentations=("blur",))


def test_linear_probe_matches_plain_sgd():
    g = torch.Generator().manual_seed(2)
    support, query = torch.randn(1, 6, 4, generator=g), torch.randn(1, 3, 4, generator=g)
    labels = torch.tensor([[0, 0, 1, 1, 2, 2]])
    settings = FineTuning(epochs=5, batch=6, lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0)
    probe = LinearProbe("linear", settings)
    logits = probe(support, labels, query, 3)
    # the same start as the probe's (nn.Linear's uniform init from the seeded generator)
    gen = torch.Generator().manual_seed(settings.seed)
    bound = 1 / 2
    w = ((2 * torch.rand(1, 3, 4, generator=gen) - 1) * bound)[0].requires_grad_()
    b = ((2 * torch.rand(1, 3, generator=gen) - 1) * bound)[0].requires_grad_()
    opt = torch.optim.SGD([w, b], lr=0.1)
    for _ in range(5):  # full batch: the order of the support examples does not matter
        loss = F.cross_entropy(support[0] @ w.T + b, labels[0])
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(logits[0], (query[0] @ w.T + b).detach(), atol=1e-5, rtol=1e-5)

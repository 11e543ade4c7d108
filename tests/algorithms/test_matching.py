"""Matching Networks against a per-query computation of the paper's attention, and full context
embeddings against a per-task, per-query loop of the paper's LSTM equations (Appendix A)."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

from fastmeta.algorithms.matching import MatchingNetwork
from fastmeta.config import apply_overrides
from fastmeta.models import Conv4
from fastmeta.run.build import build_algorithm, build_model
from fastmeta.run_config import RunConfig
from fastmeta.tasks import TaskBatch
from tests.reference import random_classification_batch


def reference_loss_and_log_probs(encoder, batch, scale, context=None):
    """For each query: softmax attention over cosine similarities to every support example,
    summed per class, then the negative log-probability of the true class. ``context(support,
    query)`` of one task, when given, maps the encoder's embeddings to ``(g, f)`` first."""
    losses, all_log_probs = [], []
    for task in batch:
        shots = len(task.support_y)
        embedded = encoder(torch.cat([task.support_x, task.query_x]))
        support, query = embedded[:shots], embedded[shots:]
        if context is not None:
            support, query = context(support, query)
        ways = int(task.support_y.max()) + 1
        rows = []
        for q in query:
            similarity = torch.stack([F.cosine_similarity(q, s, dim=0) for s in support])
            attention = torch.softmax(scale * similarity, dim=0)
            rows.append(torch.stack([attention[task.support_y == k].sum() for k in range(ways)]))
        log_probs = torch.stack(rows).log()
        losses.append(F.nll_loss(log_probs, task.query_y))
        all_log_probs.append(log_probs)
    return torch.stack(losses).mean(), torch.stack(all_log_probs)


@pytest.mark.parametrize("scale", [1.0, 7.0])
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_loss_predictions_and_gradient_match_the_definition(scale, strategy):
    torch.manual_seed(0)
    encoder = Conv4(1, None, hidden=8, blocks=2)
    batch = random_classification_batch(tasks=3, ways=4, shots=2, queries=2)
    model = MatchingNetwork(encoder, scale=scale, strategy=strategy)
    out = model(batch)
    grads = torch.autograd.grad(out.loss, list(encoder.parameters()))
    loss, log_probs = reference_loss_and_log_probs(encoder, batch, scale)
    expected = torch.autograd.grad(loss, list(encoder.parameters()))
    torch.testing.assert_close(out.loss, loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.predictions, log_probs.detach(), rtol=1e-5, atol=1e-5)
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)
    assert torch.equal(out.accuracy, (log_probs.argmax(-1) == batch.query_y).float().mean(-1))


def test_probabilities_sum_to_one_and_evaluate_builds_no_graph():
    model = MatchingNetwork(Conv4(1, None, hidden=4, blocks=2), scale=20.0)
    out = model.evaluate(random_classification_batch())
    assert not out.loss.requires_grad
    torch.testing.assert_close(out.predictions.exp().sum(-1), torch.ones(3, 6))


def test_bad_scale_is_refused():
    with pytest.raises(ValueError, match="scale must be positive"):
        MatchingNetwork(Conv4(1, None), scale=0.0)


def lstm_step(inputs, c, weight, bias):
    """One LSTM cell step on vectors: gates ``weight @ inputs + bias`` in PyTorch's order i, f,
    g, o, where ``inputs`` is the input and previous hidden state concatenated; returns
    ``(h, c)``."""
    i, f, g, o = (weight @ inputs + bias).chunk(4)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def reference_context(fce):
    """The paper's ``g`` and ``f`` for one task, one support example and one query at a time,
    with the weights of ``fce`` (a :class:`FullContextEmbedding`)."""
    lstm, cell, dim = fce.support_lstm, fce.query_cell, fce.dim

    def run(sequence, suffix):
        weight = torch.cat([getattr(lstm, f"weight_ih_l0{suffix}"),
                            getattr(lstm, f"weight_hh_l0{suffix}")], dim=1)  # fmt: skip
        bias = getattr(lstm, f"bias_ih_l0{suffix}") + getattr(lstm, f"bias_hh_l0{suffix}")
        h = c = torch.zeros(dim, dtype=weight.dtype)
        states = []
        for x in sequence:
            h, c = lstm_step(torch.cat([x, h]), c, weight, bias)
            states.append(h)
        return states

    # The paper's LSTM(f'(x), [h, r], c): one weight on the concatenation [f'(x); h; r].
    query_weight = torch.cat(
        [cell.weight_ih[:, :dim], cell.weight_hh, cell.weight_ih[:, dim:]], dim=1
    )
    query_bias = cell.bias_ih + cell.bias_hh

    def context(support, query):
        forward = run(list(support), "")
        backward = run(list(support.flip(0)), "_reverse")[::-1]
        g = [fwd + bwd + s for fwd, bwd, s in zip(forward, backward, support, strict=True)]
        f = []
        for x in query:
            h = c = torch.zeros(dim, dtype=x.dtype)
            for _ in range(fce.steps):
                attention = torch.softmax(torch.stack([h @ gi for gi in g]), dim=0)
                r = sum(a * gi for a, gi in zip(attention, g, strict=True))
                h_hat, c = lstm_step(torch.cat([x, h, r]), c, query_weight, query_bias)
                h = h_hat + x
            f.append(h)
        return torch.stack(g), torch.stack(f)

    return context


def double_batch(batch):
    return TaskBatch(batch.support_x.double(), batch.support_y, batch.query_x.double(),
                     batch.query_y)  # fmt: skip


@pytest.mark.parametrize("scale", [1.0, 7.0])
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_full_context_embeddings_match_the_papers_equations(scale, strategy):
    """Log-probabilities, loss and the gradient of every parameter (encoder and both LSTMs)
    equal a float64 loop over tasks, support examples and queries."""
    torch.manual_seed(0)
    model = MatchingNetwork(
        Conv4(1, None, hidden=5, blocks=2), scale=scale, strategy=strategy, fce_dim=5,
        fce_steps=3,
    ).double()  # fmt: skip
    batch = double_batch(random_classification_batch(tasks=3, ways=3, shots=2, queries=2))
    params = list(model.parameters())
    assert len(params) == len(list(model.encoder.parameters())) + 12  # 8 LSTM + 4 LSTMCell
    out = model(batch)
    grads = torch.autograd.grad(out.loss, params)
    loss, log_probs = reference_loss_and_log_probs(
        model.encoder, batch, scale, reference_context(model.fce)
    )
    expected = torch.autograd.grad(loss, params)
    torch.testing.assert_close(out.loss, loss, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(out.predictions, log_probs.detach(), rtol=1e-9, atol=1e-12)
    for (name, _), g, e in zip(model.named_parameters(), grads, expected, strict=True):
        assert e.abs().sum() > 0, name
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-12, msg=name)


def test_full_context_embeddings_keep_tasks_independent():
    """Backward in chunks of 2 tasks leaves the gradients of one backward over the batch, and a
    chunk alone gives its tasks' results within the batch."""
    batch = double_batch(random_classification_batch(tasks=5, ways=3, shots=2, queries=2))
    grads, outputs = [], []
    for chunk_size in (2, 5):
        torch.manual_seed(0)
        model = MatchingNetwork(Conv4(1, None, hidden=4, blocks=2), fce_dim=4).double()
        outputs.append(model.accumulate_gradients(batch, chunk_size))
        grads.append([p.grad for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(outputs[0].predictions, outputs[1].predictions, rtol=1e-9, atol=0)
    alone = model.evaluate(batch.slice(2, 4)).predictions
    torch.testing.assert_close(alone, outputs[1].predictions[2:4], rtol=1e-9, atol=0)


def test_full_context_embeddings_add_parameters_only_when_asked():
    """Without ``fce_dim`` the state is the encoder's alone (checkpoints are unchanged)."""
    encoder = Conv4(1, None, hidden=4, blocks=2)
    plain = MatchingNetwork(encoder)
    assert plain.fce is None
    assert set(plain.state_dict()) == {f"encoder.{k}" for k in encoder.state_dict()}
    with_fce = MatchingNetwork(encoder, fce_dim=4, fce_steps=2)
    assert with_fce.fce.steps == 2 and with_fce.fce.dim == 4
    assert any(k.startswith("fce.support_lstm.") for k in with_fce.state_dict())


def test_bad_full_context_settings_are_refused():
    with pytest.raises(ValueError, match=r"fce_steps .* must be >= 1, got 0"):
        MatchingNetwork(Conv4(1, None), fce_dim=64, fce_steps=0)
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        MatchingNetwork(Conv4(1, None), fce_dim=0)
    model = MatchingNetwork(Conv4(1, None, hidden=4, blocks=2), fce_dim=6)
    with pytest.raises(ValueError, match=r"embeddings have size 4 .* set fce_dim=4"):
        model(random_classification_batch())


def test_the_config_options_reach_the_module():
    """``algorithm.options.fce`` adds embeddings of the encoder's size, found by running it."""

    def build(*options):
        config = apply_overrides(RunConfig(), [
            "algorithm.name=matching", "model.name=conv4", "model.hidden=6",
            "sampler.ways=3", *options,
        ])  # fmt: skip
        return build_algorithm(config, build_model(config, (1, 28, 28)))

    assert build().fce is None
    model = build("algorithm.options.fce=true", "algorithm.options.fce_steps=2")
    assert (model.fce.dim, model.fce.steps) == (6, 2)
    out = model(random_classification_batch(tasks=2, ways=3, shots=1, queries=1, shape=(1, 28, 28)))
    assert out.loss.isfinite() and out.predictions.shape == (2, 3, 3)
    with pytest.raises(ValueError, match=r"fce_steps .* must be >= 1"):
        build("algorithm.options.fce=true", "algorithm.options.fce_steps=0")


@pytest.mark.skipif(
    not os.environ.get("FASTMETA_DATA"), reason="set FASTMETA_DATA to the folder holding omniglot/"
)
def test_learns_on_real_omniglot(tmp_path):
    """30 steps of 4 tasks, 32-filter CNN, 100 test episodes of 5 queries per class. Measured
    (2026-11-26): 75.8 +- 2.5 %; chance is 20 %, the bound sits six CIs under the measurement."""
    from fastmeta.config import apply_overrides
    from fastmeta.presets import load_config
    from fastmeta.train.trainer import Trainer

    config = apply_overrides(
        load_config("matching-omniglot-5w1s"),
        ["train.iterations=30", "train.val_every=0", "train.checkpoint_every=30",
         "sampler.meta_batch=4", "sampler.test_queries=5", "eval.episodes=100",
         "model.hidden=32"],
    )  # fmt: skip
    report = Trainer.create(config, tmp_path, progress_bar=False).fit()
    assert report["ways"] == 5 and report["shots"] == 1
    assert report["accuracy"]["mean"] > 0.60 and math.isfinite(report["loss"]["mean"])

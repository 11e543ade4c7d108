"""Training precision: float32 and tf32 are plain float32 on a CPU, bf16 autocasts the meta-step,
and the trainer runs and reports it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
import torch

from fastmeta.algorithms import MAML
from fastmeta.config import apply_overrides
from fastmeta.models import Conv4
from fastmeta.presets import load_config
from fastmeta.train.precision import precision
from fastmeta.train.trainer import Trainer
from tests.reference import meta_gradient as reference_meta_gradient
from tests.reference import random_classification_batch

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def fresh_probe() -> Iterator[None]:
    """The CPU probe and the slow-bf16 warning are cached per process: each test starts and
    leaves them empty, so a probe it fakes is read, and not kept for the tests after it."""
    from fastmeta.train import precision as module

    for cached in (module.native_cpu_bf16, module._warn_without_native_bf16):
        cached.cache_clear()
    yield
    for cached in (module.native_cpu_bf16, module._warn_without_native_bf16):
        cached.cache_clear()


def meta_gradient(mode: str | None) -> torch.Tensor:
    torch.manual_seed(0)
    model = Conv4(1, 3, hidden=8, blocks=2)
    batch = random_classification_batch(tasks=4, shape=(1, 12, 12))
    maml = MAML(model, lr=0.3, steps=1)
    if mode is None:
        maml.accumulate_gradients(batch, None)
    else:
        with precision(mode, CPU):
            maml.accumulate_gradients(batch, None)
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_float32_and_tf32_are_plain_float32_on_a_cpu_and_bf16_is_not():
    plain = meta_gradient(None)
    assert torch.equal(meta_gradient("float32"), plain)
    assert torch.equal(meta_gradient("tf32"), plain)
    bf16 = meta_gradient("bf16")
    assert torch.isfinite(bf16).all() and bf16.dtype == torch.float32
    assert not torch.allclose(bf16, plain, rtol=1e-3, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_bf16_meta_gradient_is_within_its_measured_bound_of_float64(seed):
    """Second-order MAML under bf16 autocast against a float64 per-task reference: measured
    relative errors 0.05-0.15 on these four problems (float32: 2e-7), so the bound is 0.3."""
    torch.manual_seed(seed)
    model = Conv4(1, 3, hidden=8, blocks=2)
    batch = random_classification_batch(tasks=4, shape=(1, 12, 12), seed=seed)
    wide = Conv4(1, 3, hidden=8, blocks=2).double()
    wide.load_state_dict(model.state_dict())
    double = type(batch)(
        batch.support_x.double(), batch.support_y, batch.query_x.double(), batch.query_y
    )
    exact = torch.cat(
        [g.flatten() for g in reference_meta_gradient(wide, double, 0.3, 1, False).values()]
    )
    for mode, bound in (("float32", 1e-5), ("bf16", 0.3)):
        copy = Conv4(1, 3, hidden=8, blocks=2)
        copy.load_state_dict(model.state_dict())
        with precision(mode, CPU):
            MAML(copy, lr=0.3, steps=1).accumulate_gradients(batch, None)
        got = torch.cat([p.grad.flatten().double() for p in copy.parameters()])
        assert float((got - exact).norm() / exact.norm()) < bound, mode


def test_bf16_keeps_the_fast_weights_and_their_update_in_float32():
    torch.manual_seed(0)
    maml = MAML(Conv4(1, 3, hidden=8, blocks=2), lr=0.3, steps=1)
    batch = random_classification_batch(tasks=1, shape=(1, 12, 12))
    with precision("bf16", CPU):
        learner = maml.clone()
        logits = learner(batch.support_x[0])
        assert logits.dtype == torch.bfloat16  # the head's matmul ran in bf16
        learner.adapt(torch.nn.functional.cross_entropy(logits, batch.support_y[0]))
    assert {p.dtype for _, p in learner.named_parameters()} == {torch.float32}


def test_unknown_precision_names_the_choices():
    with (
        pytest.raises(ValueError, match="choose one of float32, tf32, bf16"),
        precision("fp8", CPU),
    ):
        pass


def test_trainer_trains_in_bf16_and_reports_it(tmp_path):
    config = apply_overrides(load_config("sine-maml"), [
        "train.iterations=5", "train.val_every=0", "train.checkpoint_every=5",
        "eval.episodes=10", "model.layers=[8]", "sampler.meta_batch=2", "train.precision=bf16",
    ])  # fmt: skip
    report = Trainer.create(config, tmp_path, progress_bar=False).fit()
    assert report["train_precision"] == "bf16" and report["iterations"] == 5
    assert report["loss"]["non_finite"] == 0


@pytest.mark.parametrize("native", [True, False])
def test_bf16_warns_once_on_a_cpu_without_native_bfloat16(monkeypatch, native):
    from fastmeta.train import precision as module

    probe = {"avx512_bf16": native, "amx_bf16": False}
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: probe, raising=False)
    cpu = torch.device("cpu")
    assert module.native_bf16(cpu) is native
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            with precision("bf16", cpu):
                assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    slow = [w for w in caught if "without native bfloat16" in str(w.message)]
    assert len(slow) == (0 if native else 1)


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        ("flags\t\t: fpu sse avx2 avx512f avx512_bf16\n", True),
        ("flags\t\t: fpu sse avx2 avx512f\n", False),
        (None, None),  # no /proc/cpuinfo (not Linux): cannot tell
    ],
)
def test_a_torch_without_the_probe_reads_the_cpu_flags(monkeypatch, tmp_path, cpuinfo, expected):
    """torch 2.4 has no ``_get_cpu_capability``: the flags come from /proc/cpuinfo, and where
    nothing says, ``auto`` takes float32 and asking for bf16 does not warn."""
    from fastmeta.train import precision as module

    monkeypatch.delattr(torch._C._cpu, "_get_cpu_capability", raising=False)
    monkeypatch.setattr(module, "CPUINFO", tmp_path / "cpuinfo")
    if cpuinfo is not None:
        (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert module.native_bf16(CPU) is expected
    assert module.resolve_precision("auto", CPU) == ("bf16" if expected else "float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with precision("bf16", CPU):
            pass
    slow = [w for w in caught if "without native bfloat16" in str(w.message)]
    assert len(slow) == (1 if expected is False else 0)


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_where_native_and_float32_elsewhere_and_the_report_says_which(
    monkeypatch, tmp_path, native
):
    from fastmeta.train import precision as module

    probe = {"avx512_bf16": native, "amx_bf16": False}
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: probe, raising=False)
    assert module.resolve_precision("auto", CPU) == ("bf16" if native else "float32")
    assert module.resolve_precision("float32", CPU) == "float32"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto never takes the slow path, so never warns
        with precision("auto", CPU):
            assert torch.is_autocast_enabled("cpu") is native
    config = apply_overrides(load_config("sine-maml"), [
        "train.iterations=2", "train.val_every=0", "train.checkpoint_every=2",
        "eval.episodes=4", "model.layers=[8]", "sampler.meta_batch=2", "train.precision=auto",
    ])  # fmt: skip
    report = Trainer.create(config, tmp_path, progress_bar=False).fit()
    assert report["train_precision"] == f"auto: {'bf16' if native else 'float32'}"

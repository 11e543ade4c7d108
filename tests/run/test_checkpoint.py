"""Checkpoints: round trip, rotation, survival of kill -9 mid-write, refusal of bad files."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from fastmeta.run.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointCorruptError,
    CheckpointError,
    CheckpointMismatchError,
    best_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_latest,
    model_fingerprint,
    save_best,
    save_checkpoint,
)
from fastmeta.train.rng import capture_rng_state, restore_rng_state

CONFIG: dict[str, Any] = {
    "algorithm": {"name": "maml", "inner_lr": 0.4, "inner_steps": 1, "first_order": False},
    "optimizer": {"name": "adam", "lr": 1e-3, "betas": (0.9, 0.999)},
    "data": {"ways": 5, "shots": 1, "queries": 1, "root": "/data/omniglot", "split": None},
    "train": {"iterations": 3000, "seed": 0},
}


def _model(hidden: int = 8) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, 3)
    )


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, sched: Any, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    sched.step()


def _training_state() -> tuple[nn.Module, torch.optim.Optimizer, Any, dict[str, Any]]:
    """A realistic trainer state after a few Adam steps with a StepLR schedule."""
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for i in range(5):
        _train_step(model, opt, sched, i)
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "sampler": {"position": 1234, "seed": 42},
        "rng": capture_rng_state(),
        "config": CONFIG,
        "metrics": {"best_val_acc": 0.875, "history": [0.5, 0.75, math.inf]},
        "step": 5,
    }
    return model, opt, sched, state


def _assert_same(a: Any, b: Any, where: str = "state") -> None:
    """Exact structural equality: same types, same tensor dtypes/shapes/bits, same order."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), where
        return
    assert type(a) is type(b), f"{where}: {type(a)} vs {type(b)}"
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), where


def _fingerprint(model: nn.Module, config: dict[str, Any] = CONFIG) -> dict[str, Any]:
    return {"model": model_fingerprint(model), "config": config}


# --- round trip -----------------------------------------------------------------------------------


def test_round_trip_restores_training_exactly(tmp_path: Path) -> None:
    model, opt, sched, state = _training_state()
    path = save_checkpoint(tmp_path, 5, state, fingerprint=_fingerprint(model))
    assert path == tmp_path / "checkpoints" / "step-00000005.pt"

    loaded = load_checkpoint(path, expected=_fingerprint(_model()))
    _assert_same(state, loaded)

    # Restore into fresh objects and continue: identical parameters, lr and random draws.
    model2 = _model()
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-3)
    sched2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    model2.load_state_dict(loaded["model"])
    opt2.load_state_dict(loaded["optimizer"])
    sched2.load_state_dict(loaded["scheduler"])
    for i in range(5, 8):
        _train_step(model, opt, sched, i)
        _train_step(model2, opt2, sched2, i)
    for p, q in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]

    def draws() -> tuple[float, float, list[float]]:
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    restore_rng_state(state["rng"])  # the generators as they were when the state was captured
    expected_draws = draws()
    torch.manual_seed(999)
    restore_rng_state(loaded["rng"])
    assert draws() == expected_draws


def test_file_is_plain_weights_only_torch_file(tmp_path: Path) -> None:
    _, _, _, state = _training_state()
    path = save_checkpoint(tmp_path, 1, state)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["version"] == FORMAT_VERSION and raw["step"] == 1
    _assert_same(state, raw["state"])


def test_unloadable_state_is_refused_before_writing(tmp_path: Path) -> None:
    state = {"metrics": {"acc": np.float64(0.9)}}
    with pytest.raises(TypeError, match=r"state\['metrics'\]\['acc'\].*numpy"):
        save_checkpoint(tmp_path, 1, state)
    with pytest.raises(TypeError, match="PosixPath"):
        save_checkpoint(tmp_path, 1, {"root": Path("/data")})
    assert list((tmp_path / "checkpoints").iterdir()) == []


# --- rotation and best ----------------------------------------------------------------------------


def test_rotation_keeps_last_k_and_best_separately(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None and best_checkpoint(tmp_path) is None
    for step in range(1, 7):
        save_checkpoint(tmp_path, step, {"step": step, "w": torch.full((3,), float(step))}, keep=3)
        if step == 2:
            save_best(tmp_path, {"step": step}, step=step)
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ["step-00000004.pt", "step-00000005.pt", "step-00000006.pt"]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-00000006.pt"
    best = best_checkpoint(tmp_path)
    assert best is not None and load_checkpoint(best) == {"step": 2}
    for path in list_checkpoints(tmp_path):
        assert load_checkpoint(path)["step"] == int(path.stem.split("-")[1])

    save_checkpoint(tmp_path, 7, {"step": 7}, keep=1)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000007.pt"]
    assert best_checkpoint(tmp_path) == best  # best.pt is not part of the rotation


def test_rotation_never_deletes_the_checkpoint_just_written(tmp_path: Path) -> None:
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, {"step": step}, keep=2)
    save_checkpoint(tmp_path, 15, {"step": 15}, keep=2)  # e.g. resumed from an older one
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000015.pt", "step-00000030.pt"]
    # Sorting is numeric, also past 8 digits.
    save_checkpoint(tmp_path, 123_456_789, {"step": 0}, keep=2)
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-123456789.pt"


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep"):
        save_checkpoint(tmp_path, 1, {}, keep=0)
    with pytest.raises(ValueError, match="step"):
        save_checkpoint(tmp_path, -1, {})
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nothing.pt")


# --- interrupted writes ---------------------------------------------------------------------------

_WRITER = """
import sys, torch
from fastmeta.run.checkpoint import save_checkpoint
run_dir, step = sys.argv[1], int(sys.argv[2])
chunks = [torch.empty(1_000_000) for _ in range(8)]  # 32 MB in 8 tensors
while True:
    for c in chunks:
        c.fill_(float(step))
    save_checkpoint(run_dir, step, {"step": step, "chunks": chunks}, keep=3)
    print(step, flush=True)
    step += 1
"""


def _check_all_complete(run_dir: Path) -> list[int]:
    steps = []
    for path in list_checkpoints(run_dir):
        state = load_checkpoint(path)
        step = int(path.stem.split("-")[1])
        assert state["step"] == step
        assert all(bool((c == float(step)).all()) for c in state["chunks"])
        steps.append(step)
    return steps


def _temporaries(run_dir: Path) -> list[Path]:
    return [p for p in (run_dir / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def _partly_written(run_dir: Path, full_size: int) -> bool:
    for entry in os.scandir(run_dir / "checkpoints"):
        try:
            if 0 < entry.stat().st_size < full_size // 2:
                return True
        except FileNotFoundError:  # renamed or deleted meanwhile
            pass
    return False


def test_kill_9_mid_write_never_damages_completed_checkpoints(tmp_path: Path) -> None:
    rng = random.Random(0)
    next_step, full_size, partial_kills = 0, 0, 0
    rounds = 4
    for round_ in range(rounds):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path), str(next_step)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # one checkpoint completed in this round
            assert first.strip() == str(next_step), "writer failed to start"
            full_size = (
                full_size or (tmp_path / "checkpoints" / f"step-{next_step:08d}.pt").stat().st_size
            )
            time.sleep(rng.uniform(0.0, 0.15))
            if round_ < rounds - 1:
                # Aim: kill while some file (normally the temporary one) is partly written.
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not _partly_written(tmp_path, full_size):
                    pass
            # Last round: kill at a random moment (rename, rotation, between saves, ...).
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        completed = [int(line) for line in [first, *proc.stdout.read().split()] if line.strip()]
        leftovers = _temporaries(tmp_path)
        if any(p.stat().st_size < full_size for p in leftovers):
            partial_kills += 1

        steps = _check_all_complete(tmp_path)  # every completed checkpoint loads intact
        latest = latest_checkpoint(tmp_path)
        assert latest is not None
        latest_step = int(latest.stem.split("-")[1])
        # The newest file is at least the last reported save, at most one more (renamed, not
        # yet reported when killed).
        assert completed[-1] <= latest_step <= completed[-1] + 1
        assert steps[-1] == latest_step and len(steps) <= 3
        next_step = latest_step + 1

    assert partial_kills >= 1, "no kill landed mid-write; the test did not test anything"
    # The next save removes the leftover temporary files.
    save_checkpoint(tmp_path, next_step, {"step": next_step, "chunks": []})
    assert _temporaries(tmp_path) == []


def test_leftover_temporary_file_is_ignored_and_cleaned(tmp_path: Path) -> None:
    good = save_checkpoint(tmp_path, 1, {"w": torch.arange(1000.0)})
    blob = good.read_bytes()
    leftover = tmp_path / "checkpoints" / ".step-00000002.pt.k3j4.tmp"
    leftover.write_bytes(blob[: len(blob) // 2])
    assert latest_checkpoint(tmp_path) == good
    assert list_checkpoints(tmp_path) == [good]
    assert load_latest(tmp_path) is not None
    save_checkpoint(tmp_path, 2, {"w": torch.arange(3.0)})
    assert not leftover.exists()


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.5, 0.99, "minus1"])
def test_truncated_checkpoint_raises_naming_file_and_previous(tmp_path: Path, fraction) -> None:
    previous = save_checkpoint(tmp_path, 1, {"w": torch.arange(1000.0)})
    blob = save_checkpoint(tmp_path, 2, {"w": torch.arange(2000.0)}).read_bytes()
    broken = tmp_path / "checkpoints" / "step-00000002.pt"  # written by hand, not by save
    length = len(blob) - 1 if fraction == "minus1" else int(len(blob) * fraction)
    broken.write_bytes(blob[:length])
    with pytest.raises(CheckpointCorruptError) as info:
        load_checkpoint(broken)
    message = str(info.value)
    assert str(broken) in message and str(previous) in message
    assert info.value.previous == previous

    with pytest.warns(RuntimeWarning, match="step-00000002"):
        found = load_latest(tmp_path)
    assert found is not None and found[0] == previous
    assert torch.equal(found[1]["w"], torch.arange(1000.0))


def test_load_latest_raises_when_every_checkpoint_is_corrupt(tmp_path: Path) -> None:
    assert load_latest(tmp_path) is None
    path = save_checkpoint(tmp_path, 1, {"w": torch.zeros(10)})
    path.write_bytes(path.read_bytes()[:100])
    with (
        pytest.warns(RuntimeWarning),
        pytest.raises(CheckpointCorruptError, match="No earlier checkpoint"),
    ):
        load_latest(tmp_path)


# --- tampering ------------------------------------------------------------------------------------


def test_flipped_bytes_in_tensor_data_are_detected(tmp_path: Path) -> None:
    w = torch.arange(4096, dtype=torch.float32)
    path = save_checkpoint(tmp_path, 1, {"w": w, "b": torch.ones(7)})
    blob = bytearray(path.read_bytes())
    start = bytes(blob).find(w.numpy().tobytes())
    assert start > 0
    for offset in (0, 1234, w.numel() * 4 - 1):
        damaged = bytearray(blob)
        damaged[start + offset] ^= 0x10
        path.write_bytes(damaged)
        with pytest.raises(CheckpointCorruptError, match="digest"):
            load_checkpoint(path)


def test_flipped_byte_anywhere_is_refused_or_harmless(tmp_path: Path) -> None:
    """Any single flipped byte either raises CheckpointCorruptError or changes nothing loaded
    (e.g. zip padding); it never yields different data."""
    state = {"w": torch.randn(300), "n": 12, "cfg": {"lr": 0.1, "name": "maml"}}
    path = save_checkpoint(tmp_path, 1, state, fingerprint={"config": {"lr": 0.1}})
    blob = path.read_bytes()
    positions = random.Random(1).sample(range(len(blob)), 300)
    refused = 0
    for pos in positions:
        damaged = bytearray(blob)
        damaged[pos] ^= 0xFF
        path.write_bytes(damaged)
        try:
            loaded = load_checkpoint(path, expected={"config": {"lr": 0.1}})
        except CheckpointCorruptError:
            refused += 1
        else:
            _assert_same(state, loaded)
    assert refused > len(positions) // 2


def test_payload_edited_without_digest_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 1, {"w": torch.zeros(5), "lr": 0.1})
    payload = torch.load(path, weights_only=True)
    payload["state"]["lr"] = 0.2
    torch.save(payload, path)
    with pytest.raises(CheckpointCorruptError, match="digest"):
        load_checkpoint(path)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused_by_weights_only(tmp_path: Path) -> None:
    previous = save_checkpoint(tmp_path, 1, {"w": torch.zeros(2)})
    marker = tmp_path / "pwned"
    evil = tmp_path / "checkpoints" / "step-00000002.pt"
    payload = {"format": FORMAT, "version": 1, "step": 2, "fingerprint": {}, "digest": "x"}
    torch.save({**payload, "state": {"x": _Exploit(marker)}}, evil)
    with pytest.raises(CheckpointCorruptError, match="weights_only") as info:
        load_checkpoint(evil)
    assert not marker.exists()
    assert str(evil) in str(info.value) and str(previous) in str(info.value)

    torch.save({**payload, "state": {"f": os.system}}, evil)  # a bare reference to os.system
    with pytest.raises(CheckpointCorruptError, match="system"):
        load_checkpoint(evil)


def test_foreign_and_future_files_are_refused(tmp_path: Path) -> None:
    bare = tmp_path / "bare.pt"
    torch.save(_model().state_dict(), bare)
    with pytest.raises(CheckpointCorruptError, match="not a fastmeta checkpoint"):
        load_checkpoint(bare)

    path = save_checkpoint(tmp_path, 1, {"w": torch.zeros(2)})
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "version": FORMAT_VERSION + 1}, path)
    with pytest.raises(CheckpointError, match="upgrade fastmeta") as info:
        load_checkpoint(path)
    assert not isinstance(info.value, CheckpointCorruptError)


# --- fingerprint ----------------------------------------------------------------------------------


def test_model_fingerprint_lists_names_and_shapes() -> None:
    fp = model_fingerprint(_model(8))
    assert fp["0.weight"] == [8, 4] and fp["3.bias"] == [3]
    assert fp["1.running_mean"] == [8] and "1.num_batches_tracked" in fp
    assert model_fingerprint(_model(8).state_dict()) == fp


def test_mismatched_model_is_refused_with_the_differences(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 1, {"w": torch.zeros(1)}, fingerprint=_fingerprint(_model(8)))
    other = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    other.add_module("extra", nn.Linear(3, 3))
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(path, expected=_fingerprint(other))
    message = str(info.value)
    assert str(path) in message
    assert "model.0.weight: [8, 4] in the checkpoint, [16, 4] now" in message
    assert "model.extra.weight: only in the current run ([3, 3])" in message
    assert "config" not in "".join(info.value.differences)
    assert "start a new run directory" in message


def test_mismatched_config_is_refused_unless_ignored(tmp_path: Path) -> None:
    model = _model()
    path = save_checkpoint(tmp_path, 1, {"w": torch.zeros(1)}, fingerprint=_fingerprint(model))
    changed = {
        **CONFIG,
        "optimizer": {**CONFIG["optimizer"], "lr": 0.01},
        "train": {"iterations": 6000, "seed": 0},
        "data": {k: v for k, v in CONFIG["data"].items() if k != "split"},
    }
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(path, expected=_fingerprint(model, changed))
    assert info.value.differences == [
        "config.optimizer.lr: 0.001 in the checkpoint, 0.01 now",
        "config.data.split: only in the checkpoint (None)",
        "config.train.iterations: 3000 in the checkpoint, 6000 now",
    ]
    # Keys allowed to differ (a longer run, say) are ignored on request; the rest still count.
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(
            path, expected=_fingerprint(model, changed), ignore=["config.train.iterations"]
        )
    assert len(info.value.differences) == 2
    ok = {**changed, "optimizer": CONFIG["optimizer"], "data": CONFIG["data"]}
    load_checkpoint(path, expected=_fingerprint(model, ok), ignore=["config.train"])
    # Tuples and lists compare equal (YAML gives lists); a section never recorded is a mismatch.
    as_lists = {**CONFIG, "optimizer": {**CONFIG["optimizer"], "betas": [0.9, 0.999]}}
    load_checkpoint(path, expected={"config": as_lists})
    with pytest.raises(CheckpointMismatchError, match="algorithm: not recorded"):
        load_checkpoint(path, expected={"algorithm": "maml"})


def test_setting_added_after_the_checkpoint_matches_only_at_its_default(tmp_path: Path) -> None:
    model = _model()
    path = save_checkpoint(tmp_path, 1, {"w": torch.zeros(1)}, fingerprint=_fingerprint(model))
    newer = {**CONFIG, "data": {**CONFIG["data"], "channels": None, "fractions": [0.6, 0.4]}}
    defaults = {"config": {"data": {"channels": None, "fractions": (0.6, 0.4)}}}
    load_checkpoint(path, expected=_fingerprint(model, newer), defaults=defaults)
    changed = {**CONFIG, "data": {**CONFIG["data"], "channels": 3, "fractions": [0.6, 0.4]}}
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(path, expected=_fingerprint(model, changed), defaults=defaults)
    assert info.value.differences == ["config.data.channels: only in the current run (3)"]

"""The prepared GPU run: its dry run goes through every part on the CPU and says what needs
CUDA; limits stop a part; bad input gets one line; targets count fp32-equivalent rows only."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from benchmarks import gpu, gpu_carry, gpu_report, gpu_timing
from benchmarks.gpu_fixture import write_omniglot
from benchmarks.gpu_timing import workloads

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, Path]:
    """One dry run without data (so it makes its tiny Omniglot) and without peer packages."""
    out = tmp_path_factory.mktemp("gpu-out")
    env = {k: v for k, v in os.environ.items() if k not in ("FASTMETA_DATA", "OUT")}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--dry-run", "--out", str(out),
         "--peers", str(out / "no-peers")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "gpu.json").read_text()), done.stdout, out


def test_the_dry_run_runs_every_part_and_reports_it(dry_run):
    report, stdout, out = dry_run
    parts = report["parts"]
    assert parts["setup"]["status"].startswith("skipped: no peer wheels")
    for name in ("tests", "timing", "compile", "train"):
        assert parts[name]["status"] == "ok", (name, parts[name])
        assert (out / "logs" / f"{name}.log").exists()
    assert report["dry_run"] is True and report["data"] == "tiny generated fixture"
    assert report["machine"]["torch"] == torch.__version__ and report["date"].startswith("20")
    assert all(parts[name]["limit_s"] == gpu.DRY_RUN_TOTAL_S for name in parts if name != "setup")
    summary = (out / "gpu.md").read_text()
    assert "DRY RUN" in summary and "| part | workload / test | method |" in summary
    assert "targets on" in stdout and "| timing |" in stdout


def test_the_dry_run_selects_the_cuda_tests_and_says_why_they_skip(dry_run):
    tests = dry_run[0]["tests"]
    names = {t["test"] for t in tests["tests"]}
    graph = "tests/train/test_cuda_graph.py::test_replays_match_eager_meta_steps"
    assert {f"{graph}[vmap-None]", f"{graph}[vmap-2]", f"{graph}[loop-None]"} <= names
    assert "tests/train/test_cuda_graph.py::test_refuses_a_batch_off_cuda" not in names
    assert tests["status"] == "skipped" and tests["counts"] == {"skipped": len(names)}
    assert all("CUDA" in t["message"] for t in tests["tests"])


def test_the_dry_run_checks_gradients_before_timing(dry_run):
    rows = dry_run[0]["rows"]
    labels = [w.label for w in workloads(tiny=True)]
    assert [r["workload"] for r in rows if r["method"] == "fastmeta auto"] == labels
    for row in rows:
        if row["status"] == "ok":
            assert row["gradient_error"] is not None and row["tasks_per_s"] > 0
            if row["precision"] == "float32":
                assert row["gradient_error"] < 1e-4 and row["fp32_equivalent"]
        else:
            assert row["tasks_per_s"] is None
    by_method = {r["method"]: r for r in rows if r["workload"] == labels[0]}
    assert by_method["fastmeta vmap, torch.compile"]["status"] == "ok"
    assert by_method["fastmeta vmap, torch.compile"]["part"] == "compile"
    assert by_method["fastmeta auto, bf16"]["gradient_error"] > 1e-3  # bf16 is checked too
    for name in ("fastmeta vmap, CUDA graph", "fastmeta vmap, torch.compile reduce-overhead"):
        assert by_method[name]["status"] == "skipped" and "needs CUDA" in by_method[name]["note"]
    for peer, module in (("learn2learn", "learn2learn"), ("higher", "higher")):
        if importlib.util.find_spec(module) is None:
            assert by_method[peer]["status"] == "not installed"


def test_the_dry_run_trains_the_preset_through_the_trainer(dry_run):
    train = dry_run[0]["train"]
    assert train["preset"] == "maml-omniglot-5w1s" and train["device"] == "cpu"
    assert train["iterations"] == 2 and [v["step"] for v in train["validations"]] == [1, 2]
    assert all(v["train_seconds"] is not None for v in train["validations"])
    assert train["reached"] is False and train["test"]["accuracy"]["count"] == 4


def test_a_part_past_its_limit_is_stopped_and_what_it_wrote_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, "GRACE_S", 1.0)
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('started', flush=True); time.sleep(60)"
    )
    result = gpu.run_part([sys.executable, "-c", stubborn], 3.0, tmp_path / "log", dict(os.environ))
    assert result["status"] == "timed out at its limit of 3 s" and result["seconds"] < 10
    assert "started" in (tmp_path / "log").read_text()
    failing = gpu.run_part([sys.executable, "-c", "raise SystemExit(3)"], 30.0, tmp_path / "l2", {})
    assert failing["status"] == "failed (exit 3)"


def test_the_shares_fill_eight_minutes_and_scale_to_a_selection():
    assert sum(gpu.SHARES_S.values()) == gpu.TOTAL_S == 480
    assert gpu.shares(["timing", "train"], 165.0) == {"timing": 85.0, "train": 80.0}


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--dry-run", "--budget-s", "0"], "--budget-s must be a positive number of seconds"),
        (["--dry-run", "--train-set", "cuda_graph"], "--train-set takes KEY=VALUE settings"),
        (["--dry-run", "--data", "/no/such/folder"], "--data /no/such/folder: no such folder"),
        (["--dry-run", "--skip", *gpu.PARTS], "--skip leaves no part to run"),
        (["--dry-run", "--only", "tests", "--skip", "train"], "not allowed with argument"),
    ],
)
def test_bad_input_gets_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        gpu.parse(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err.splitlines()[-1]


def test_data_without_omniglot_is_refused_unless_training_is_skipped(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gpu.parse(["--dry-run", "--data", str(tmp_path)])
    assert "no Omniglot in" in capsys.readouterr().err
    assert gpu.parse(["--dry-run", "--data", str(tmp_path), "--skip", "train"]).fixture is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_the_full_run_is_refused_without_cuda(capsys):
    with pytest.raises(SystemExit):
        gpu.parse([])
    assert "no CUDA device here" in capsys.readouterr().err


def _wheel(folder: Path, tag: str = "py3-none-any") -> Path:
    """A minimal wheel of a pure-Python package ``carried_peer`` with the given tag."""
    path = folder / f"carried_peer-1.0-{tag}.whl"
    info = "carried_peer-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("carried_peer/__init__.py", "VERSION = '1.0'\n")
        metadata = "Metadata-Version: 2.1\nName: carried_peer\nVersion: 1.0\n"
        wheel = f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n"
        archive.writestr(f"{info}/METADATA", metadata)
        archive.writestr(f"{info}/WHEEL", wheel)
        archive.writestr(f"{info}/RECORD", "")
    return path


def test_setup_installs_carried_wheels_without_an_index_past_one_that_does_not_fit(tmp_path):
    peers = tmp_path / "peers"
    peers.mkdir()
    _wheel(peers)
    misfit = _wheel(peers, "cp39-cp39-win_amd64")  # not for this machine
    options = gpu.Options(True, None, False, peers, tmp_path / "out", ["setup"], 60.0, [])
    run = gpu.Run(options)
    try:
        result = gpu.run_part(run.commands("setup", 60.0), 60.0, tmp_path / "log", run.env)
        log = (tmp_path / "log").read_text()
        assert result["status"] == "failed (exit 1)" and f"not installed: {misfit.name}" in log
        check = [sys.executable, "-c", "import carried_peer; print(carried_peer.VERSION)"]
        done = subprocess.run(check, env=run.env, capture_output=True, text=True, check=True)
        assert done.stdout.strip() == "1.0"
    finally:
        run.close()
    assert not run.work.exists()


def test_the_carry_copy_takes_the_zips_lists_and_checksums(tmp_path):
    data = write_omniglot(tmp_path / "data", characters=40)
    with pytest.raises(FileNotFoundError, match="SHA256SUMS"):
        gpu_carry.copy_omniglot(data, tmp_path / "carry")
    (data / "omniglot" / "SHA256SUMS").write_text("")
    copied = gpu_carry.copy_omniglot(data, tmp_path / "carry")
    names = [p.relative_to(tmp_path / "carry" / "omniglot").as_posix() for p in copied]
    assert sorted(names) == sorted(gpu_carry.FILES) and all(p.is_file() for p in copied)


def _row(method: str, tasks: float, fp32: bool = True, **extra) -> dict:
    base = {"workload": "w", "method": method, "status": "ok", "tasks_per_s": tasks}
    return {**base, "fp32_equivalent": fp32, "precision": "float32", **extra}


def test_targets_count_only_fp32_equivalent_rows():
    rows = [
        _row("learn2learn", 10.0),
        _row("fastmeta vmap", 500.0, peak_allocated_mb=900.0),
        _row("fastmeta auto, bf16", 900.0, fp32=False, peak_allocated_mb=400.0),
    ]
    gpu_report.add_ratios(rows)
    assert rows[1]["ratio"] == 50.0
    report = {"rows": rows, "train": {"validations": [{}], "reached": True,
              "train_seconds_to_target": 75.0}}  # fmt: skip
    lines = gpu_report.targets(report, "w")
    assert lines[0].startswith("speed: 'fastmeta vmap' 500.0 tasks/s = 50.0x")
    assert lines[0].endswith("(target >= 60x): not reached")
    assert lines[1].endswith("(target <= 1,024 MB): reached")
    assert lines[2] == "time to 98 %: 75.0 s of training (target <= 60 s): not reached"


def test_a_failing_workload_is_recorded_and_the_next_one_measured(tmp_path, monkeypatch):
    calls = []

    def measure(workload, group, *args):
        calls.append(workload.label)
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(gpu_timing, "measure", measure)
    rows_file = tmp_path / "rows.jsonl"
    gpu_timing.main(["--part", "timing", "--rows", str(rows_file), "--deadline-s", "5", "--tiny"])
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    assert calls == [w.label for w in workloads(tiny=True)]
    assert rows and all(r["status"] == "failed" and "CUDA out of memory" in r["note"] for r in rows)

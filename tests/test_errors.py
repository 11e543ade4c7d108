"""Every mistake a user can make at the command line gets one clear line, and nothing of theirs
is lost; docs/ERRORS.md is the catalogue of these cases and is checked against them here.

Each case is a numbered item of the hardening issue (or a neighbour of one): what the user did,
the exit status, and the first line of what they see. ``FASTMETA_WRITE_ERRORS=1 pytest
tests/test_errors.py`` rewrites the catalogue from the cases.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from fastmeta.cli import main

DOC = Path(__file__).resolve().parent.parent / "docs" / "ERRORS.md"
TINY = ["train.iterations=4", "train.val_every=2", "train.val_episodes=4", "eval.episodes=4",
        "model.layers=[8]", "sampler.meta_batch=2", "train.checkpoint_every=2",
        "train.log_every=2"]  # fmt: skip


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The exit status and stderr of ``fastmeta argv`` run in this process."""
    capsys.readouterr()
    code = main(argv)
    return code, capsys.readouterr().err


def train_sine(out: Path, *overrides: str) -> list[str]:
    return ["train", "sine-maml", *TINY, *overrides, "--out", str(out), "--no-progress"]


def digests(folder: Path) -> dict[str, str]:
    """The content of every file below ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def user_folder(base: Path, *names: str) -> Path:
    folder = base / "mine"
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(f"the user's own {name}\n")
    return folder


def trained(base: Path, capsys: pytest.CaptureFixture[str], *overrides: str) -> Path:
    out = base / "run"
    assert run(train_sine(out, *overrides), capsys)[0] == 0
    return out


# ------------------------------------------------------------------------------------ the cases
@dataclass(frozen=True)
class Case:
    number: str
    mistake: str
    act: Callable[[Path, pytest.CaptureFixture[str]], tuple[int, str]]
    status: int
    message: str  # a fragment of the first line of stderr


def overwrite_user_files(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    mine = user_folder(base, "metrics.csv", "report.json", "curves.png", "checkpoints/step-1.pt")
    (mine / "checkpoints" / "step-00000010.pt").write_text("the user's own checkpoint\n")
    before = digests(mine)
    result = run(train_sine(mine), capsys)
    forced = run([*train_sine(mine), "--force"], capsys)
    assert forced[0] == 2 and "would overwrite" in forced[1]
    assert digests(mine) == before  # nothing changed, nothing deleted
    return result


def beside_user_files(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    mine = user_folder(base, "notes.txt")
    before = digests(mine)
    result = run(train_sine(mine), capsys)
    assert not (mine / "config.yaml").exists()
    assert run([*train_sine(mine), "--force"], capsys)[0] == 0  # beside them, on request
    assert {k: v for k, v in digests(mine).items() if k in before} == before
    return result


def failed_start(*overrides: str) -> Callable[[Path, pytest.CaptureFixture[str]], tuple[int, str]]:
    def act(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
        out = base / "run"
        result = run(train_sine(out, *overrides), capsys)
        assert not out.exists()  # no run directory for a run that did not start
        assert run(train_sine(out), capsys)[0] == 0  # the corrected command is not refused
        return result

    return act


def backbone_without_data(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out = base / "run"
    result = run(["train", "--backbone", "timm:resnet18", "--out", str(out)], capsys)
    assert not out.exists()
    return result


def missing_data(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out = base / "run"
    argv = ["train", "maml-omniglot-5w1s", f"data.root={base / 'nowhere'}", "--out", str(out)]
    result = run(argv, capsys)
    assert not out.exists()
    return result


def too_many_ways(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from fastmeta.datasets.patterns import write_pattern_folder

    folder = write_pattern_folder(base / "patterns", classes=6, images=4, size=12)
    out = base / "run"
    argv = ["train", "--data", str(folder), "sampler.ways=5", "sampler.shots=1",
            "sampler.queries=1", "--out", str(out)]  # fmt: skip
    result = run(argv, capsys)
    assert not out.exists()
    return result


def untrained_eval(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from fastmeta.config import apply_overrides
    from fastmeta.presets import load_config
    from fastmeta.train.trainer import Trainer

    out = base / "run"
    config = apply_overrides(load_config("sine-maml"), TINY)
    Trainer.create(config, out, progress_bar=False)  # created, never trained
    result = run(["eval", str(out)], capsys)
    assert run(["eval", str(out), "--allow-untrained"], capsys)[0] == 0
    assert "untrained" in json.loads((out / "eval.json").read_text())["checkpoint"]
    return result


def non_finite_test(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out = base / "run"
    argv = train_sine(out, "algorithm.inner_lr=3", "eval.episodes=20")
    result = run(argv, capsys)
    report = json.loads((out / "report.json").read_text())
    assert report["loss"]["non_finite"] > 0  # written, the bad episodes counted apart
    return result


def nan_at_step_one(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    return run(train_sine(base / "run", "algorithm.inner_lr=1e30"), capsys)


def diverging(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out = base / "run"
    argv = train_sine(out, "train.iterations=400", "train.val_every=0", "train.checkpoint_every=5",
                      "optimizer.name=sgd", "optimizer.lr=0.6", "sampler.meta_batch=4")  # fmt: skip
    result = run(argv, capsys)
    kept = sorted((out / "checkpoints").glob("step-*.pt"))
    assert kept and sorted((out / "checkpoints").glob("*.diverged"))
    weights = torch.load(kept[-1], weights_only=True)["state"]["algorithm"]
    assert max(float(w.abs().max()) for w in weights.values()) < 100  # sound weights kept
    return result


def time_limit(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out = base / "run"
    argv = train_sine(out, "train.iterations=100000", "train.val_every=100000",
                      "train.time_limit_minutes=0.002")  # fmt: skip
    code, _ = run(argv, capsys)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    report = json.loads((out / "report.json").read_text())
    assert rows[-1]["phase"] == "val" and rows[-1]["step"] == report["iterations"]
    assert report["checkpoint"] == f"best on validation (step {report['iterations']})"
    return code, "(no error: the step training stopped at is validated before the test)"


def edited_config(section: str, key: str, value: object) -> Callable[..., tuple[int, str]]:
    def act(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
        out = trained(base, capsys)
        config = yaml.safe_load((out / "config.yaml").read_text())
        config[section][key] = value
        (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        before = digests(out / "checkpoints")
        result = run(["train", "--resume", str(out), "--no-progress"], capsys)
        assert digests(out / "checkpoints") == before
        return result

    return act


def corrupt_checkpoints(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out = trained(base, capsys)
    for path in (out / "checkpoints").glob("step-*.pt"):
        path.write_bytes(path.read_bytes()[:200])
    with pytest.warns(RuntimeWarning):
        return run(["train", "--resume", str(out), "--no-progress"], capsys)


def bad_yaml(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    mine = base / "my.yaml"
    mine.write_text("name: mine\nalgorithm:\n\tname: maml\n")
    return run(["train", str(mine), "--out", str(base / "run")], capsys)


def offs(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out = base / "run"
    code, _ = run(train_sine(out, "train.checkpoint_every=0", "train.log_every=0"), capsys)
    assert [p.name for p in (out / "checkpoints").glob("step-*.pt")] == ["step-00000004.pt"]
    return (
        code,
        "(no error: 0 turns checkpoints between the first and the last step, and logs, off)",
    )


def disk_full(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    import fastmeta.run.checkpoint as checkpoint

    out = trained(base, capsys)
    before = digests(out / "checkpoints")
    save = checkpoint.torch.save

    def full(*args: object, **kwargs: object) -> None:
        raise RuntimeError(
            "[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0: "
            "PytorchStreamWriter failed writing file data/0: file write failed"
        )

    checkpoint.torch.save = full  # type: ignore[assignment]
    try:
        result = run(["train", "--resume", str(out), "train.iterations=8", "--no-progress"], capsys)
    finally:
        checkpoint.torch.save = save
    assert {k: v for k, v in digests(out / "checkpoints").items() if k in before} == before
    assert not list((out / "checkpoints").glob(".*tmp"))
    return result


def extend(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out = trained(base, capsys)
    code, err = run(["train", "--resume", str(out), "train.iterations=8", "--no-progress"], capsys)
    assert json.loads((out / "report.json").read_text())["iterations"] == 8
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert history[0]["changed"] == {"train.iterations": [4, 8]} and history[0]["step"] == 4
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["iterations"] == 8
    return code, err


def refused_change(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    out = trained(base, capsys)
    return run(["train", "--resume", str(out), "model.layers=[16]", "--no-progress"], capsys)


def cli(*argv: str) -> Callable[[Path, pytest.CaptureFixture[str]], tuple[int, str]]:
    def act(base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
        return run([arg.replace("<dir>", str(base)) for arg in argv], capsys)

    return act


CASES = [
    Case(
        "1",
        "`--out` names a folder of your own files that a run would write over",
        overwrite_user_files,
        2,
        "which a run would overwrite",
    ),
    Case(
        "1",
        "`--out` names a non-empty folder that is not a run",
        beside_user_files,
        2,
        "is not empty (notes.txt) and holds no run",
    ),
    Case(
        "4",
        "a run that cannot start (a misspelt algorithm) leaves no directory behind",
        failed_start("algorithm.name=mamll"),
        2,
        "algorithm.name='mamll' is not valid",
    ),
    Case(
        "4",
        "the data is not where the configuration says",
        missing_data,
        2,
        "omniglot: 2 required file(s) missing in",
    ),
    Case("4", "more ways than the folder has classes", too_many_ways, 2, "its episodes need 5"),
    Case(
        "5",
        "`fastmeta eval` on a run with no checkpoint yet",
        untrained_eval,
        2,
        "holds no trained weights",
    ),
    Case(
        "6",
        "`train.iterations=-5`",
        failed_start("train.iterations=-5"),
        2,
        "train.iterations=-5 must be at least 0",
    ),
    Case(
        "6",
        "`--backbone` without `--data`",
        backbone_without_data,
        2,
        "--backbone goes with --data FOLDER",
    ),
    Case(
        "7",
        "test episodes whose loss is NaN (an inner lr far too large)",
        non_finite_test,
        1,
        "test episodes gave a non-finite query loss",
    ),
    Case(
        "8",
        "`sampler.ways=1`",
        failed_start("sampler.ways=1"),
        2,
        "sampler.ways=1 must be at least 2",
    ),
    Case(
        "8",
        "a negative inner learning rate",
        failed_start("algorithm.inner_lr=-0.1"),
        2,
        "algorithm.inner_lr=-0.1 must be greater than 0",
    ),
    Case(
        "8",
        "`sampler.queries=0`",
        failed_start("sampler.queries=0"),
        2,
        "sampler.queries=0: maml's training loss scores query examples",
    ),
    Case(
        "9",
        "the meta-loss is infinite at the first step",
        nan_at_step_one,
        1,
        "No checkpoint was written before it",
    ),
    Case(
        "9",
        "training diverges while the loss is still finite",
        diverging,
        1,
        "training diverged at step",
    ),
    Case(
        "10",
        "`train.time_limit_minutes` stops training between validations",
        time_limit,
        0,
        "(no error",
    ),
    Case(
        "11",
        "`config.yaml` edited by hand (a model setting)",
        edited_config("model", "layers", [16]),
        2,
        "differs from what the run's checkpoints",
    ),
    Case(
        "11",
        "`config.yaml` edited by hand (more iterations)",
        edited_config("train", "iterations", 8),
        2,
        "differs from what the run's checkpoints",
    ),
    Case("11", "every checkpoint of the run is damaged", corrupt_checkpoints, 1, "unreadable"),
    Case(
        "11",
        "a YAML file with a tab in its indentation",
        bad_yaml,
        2,
        "my.yaml, line 3 is not valid YAML",
    ),
    Case("11", "`train.checkpoint_every=0` and `train.log_every=0`", offs, 0, "(no error"),
    Case(
        "11",
        "the disk fills up while a checkpoint is written",
        disk_full,
        1,
        "no space left on the disk to write checkpoint",
    ),
    Case(
        "11",
        "a negative outer learning rate",
        failed_start("optimizer.lr=-1"),
        2,
        "optimizer.lr=-1.0 must be greater than 0",
    ),
    Case(
        "11",
        "a negative Reptile step",
        cli("train", "reptile-omniglot-5w1s", "algorithm.options.outer_lr=-1"),
        2,
        "algorithm.options.outer_lr=-1.0 must be at least 0",
    ),
    Case(
        "12",
        "`--resume RUN train.iterations=8` to train longer",
        extend,
        0,
        "changed on resume at step 4: train.iterations 4 -> 8",
    ),
    Case(
        "12",
        "`--resume RUN` with a model setting changed",
        refused_change,
        2,
        "these settings cannot change when a run is resumed: model.layers",
    ),
    Case(
        "-",
        "an unknown setting",
        cli("train", "sine-maml", "algorithm.inner_rate=1"),
        2,
        "unknown setting 'algorithm.inner_rate'",
    ),
    Case(
        "-",
        "a setting the dataset does not have",
        cli("train", "maml-omniglot-5w1s", "data.source=csv"),
        2,
        "unknown setting 'data.source' for data.dataset=omniglot",
    ),
    Case(
        "-",
        "`data.resize` that is not a resize mode",
        cli("train", "protonet-folder", "data.resize=fit"),
        2,
        "data.resize='fit' is not valid; choose one of crop, pad, squash",
    ),
    Case(
        "-",
        "`adapt --top-k 0`",
        cli("adapt", "<dir>", "--support", "<dir>", "--query", "<dir>", "--top-k", "0"),
        2,
        "--top-k must be at least 1",
    ),
    Case(
        "-",
        "`--resume` of a folder that holds no run",
        cli("train", "--resume", "<dir>/nothing"),
        2,
        "is not a run directory",
    ),
]
SEEN: dict[int, tuple[int, str]] = {}


def normalized(text: str, base: Path, fragment: str) -> str:
    """The line of ``text`` that holds ``fragment`` (the message, among progress lines), with
    the case's folder, process and time replaced by placeholders."""
    lines = [line for line in text.splitlines() if fragment in line] or [fragment]
    first = lines[0].replace(str(base), "<dir>")
    first = re.sub(r"\(\d+ MiB free\)", "(<n> MiB free)", first)
    return re.sub(
        r"process \d+ on \S+ \(since [^)]*\)", "process <pid> on <host> (since <t>)", first
    )


@pytest.mark.parametrize("index", range(len(CASES)), ids=lambda i: CASES[i].mistake[:40])
def test_the_mistake_gets_one_clear_line(
    index: int, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[index]
    monkeypatch.chdir(tmp_path)
    code, err = case.act(tmp_path, capsys)
    assert code == case.status, err
    assert case.message in err
    assert "Traceback" not in err
    SEEN[index] = (code, normalized(err, tmp_path, case.message))


BEGIN, END = "<!-- cases: generated by tests/test_errors.py -->", "<!-- end of cases -->"


def catalogue() -> str:
    """The table of :data:`CASES` as docs/ERRORS.md holds it between its markers."""
    lines = [
        BEGIN,
        "| case | what you did | exit | what you see |",
        "|---|---|---|---|",
    ]
    for index, case in enumerate(CASES):
        code, line = SEEN[index]
        shown = line.replace("|", "\\|")
        lines.append(f"| {case.number} | {case.mistake} | {code} | `{shown}` |")
    return "\n".join([*lines, END])


def test_the_catalogue_in_docs_is_the_cases(
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for index, case in enumerate(CASES):
        if index not in SEEN:  # run alone: do the case here
            base = tmp_path_factory.mktemp("case")
            monkeypatch.chdir(base)
            code, err = case.act(base, capsys)
            SEEN[index] = (code, normalized(err, base, case.message))
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    if os.environ.get("FASTMETA_WRITE_ERRORS"):
        DOC.write_text(text[:start] + catalogue() + text[end:])
    assert DOC.read_text()[start:].startswith(catalogue())


# --------------------------------------------------------------- cases with real processes
def start(out: Path, *extra: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "fastmeta", "train", "sine-maml", *TINY,
            "train.iterations=100000", "train.checkpoint_every=2", "train.val_every=0", *extra,
            "--out", str(out), "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def wait_for_a_checkpoint(run: Path, process: subprocess.Popen[str], seconds: float = 120) -> None:
    """Until ``process`` has written a checkpoint of ``run`` (any step: on a quiet machine the
    first ones are already pruned by the time a poll looks)."""
    deadline = time.monotonic() + seconds
    while not any((run / "checkpoints").glob("step-*.pt")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no checkpoint appeared in {run}"
        time.sleep(0.1)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_second_writer_is_refused_and_a_signal_saves_the_run(
    signum: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    first = start(out)
    try:
        wait_for_a_checkpoint(out, first)
        code, err = run(["train", "--resume", str(out), "--no-progress"], capsys)
        assert code == 2 and f"{out} is being written by process {first.pid}" in err
        code, err = run(train_sine(out), capsys)
        assert code == 2 and "already holds a run" in err
        first.send_signal(signum)
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 128 + signum
    name = signal.Signals(signum).name
    line = err.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"fastmeta train: interrupted \({name}\) at step (\d+); the run is saved: continue with "
        rf"`fastmeta train --resume {re.escape(str(out))}`",
        line,
    ), line
    step = int(re.search(r"at step (\d+)", line).group(1))  # type: ignore[union-attr]
    assert (out / "checkpoints" / f"step-{step:08d}.pt").exists()
    code, _ = run(["train", "--resume", str(out), f"train.iterations={step + 2}", "--no-progress"],
                  capsys)  # fmt: skip
    assert code == 0


def test_two_runs_started_together_on_one_folder_leave_one_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    racers = [start(out, f"seed={seed}", "train.iterations=6") for seed in (1, 2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in racers]
    assert sorted(code for code, _ in results) == [0, 2], results
    (winner,) = [i for i, (code, _) in enumerate(results) if code == 0]
    loser = results[1 - winner][1]
    assert "already holds a run" in loser or "is being written by process" in loser
    assert f"seed: {winner + 1}\n" in (out / "config.yaml").read_text()
    assert main(["eval", str(out), "eval.episodes=2"]) == 0  # config and weights belong together

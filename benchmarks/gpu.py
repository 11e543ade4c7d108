"""The prepared GPU run (issue 21): CUDA tests, timings against the peers, Omniglot to 98 %.

    python3 -m benchmarks.gpu --data .gpu-carry            # on the GPU: at most 8 minutes
    python -m benchmarks.gpu --dry-run                     # on a CPU: tiny sizes, same code

Parts, each a subprocess stopped at its own time limit (SIGTERM, then SIGKILL), so a slow or
hung part cannot take the others' time; what a stopped part finished is kept:

- ``setup``: install the peers' wheels and source trees found in ``--peers`` (skipped if none,
  :mod:`benchmarks.gpu_setup`);
- ``tests``: the suite's CUDA tests (those skipped without CUDA), outcome per test;
- ``timing``: fastmeta's strategies, CUDA graph, TF32 and bf16 against learn2learn, higher and
  TorchOpt, every gradient checked against float64 first (:mod:`benchmarks.gpu_timing`);
- ``compile``: the same with torch.compile;
- ``train``: the ``maml-omniglot-5w1s`` preset to 98 % validation (:mod:`benchmarks.gpu_train`),
  given what the others left of the total budget.

Prints one table (:mod:`benchmarks.gpu_report`) and writes ``gpu.json``, ``gpu.md`` and one log
per part under ``--out`` (default ``$OUT``, else ``gpu-out``); the JSON is rewritten after every
part. The dry run starts the parts after ``setup`` side by side, one thread each.
docs/PERFORMANCE.md ("GPU: the prepared run") gives the device call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from benchmarks import gpu_report, gpu_setup, gpu_tests
from benchmarks.bench_sampling import cpu_model
from benchmarks.gpu_fixture import write_omniglot
from benchmarks.gpu_timing import workloads
from benchmarks.gpu_train import read_metrics

REPO = Path(__file__).resolve().parent.parent
PARTS = ("setup", "tests", "timing", "compile", "train")
SHARES_S = {"setup": 45.0, "tests": 30.0, "timing": 170.0, "compile": 75.0, "train": 160.0}
"""Each part's time limit in the full run (480 s, 8 minutes, together); with ``--budget-s`` or
a selection of parts the limits scale to share that total, and the last part also gets what
the others left unused."""
TOTAL_S, DRY_RUN_TOTAL_S = 480.0, 300.0
GRACE_S = 5.0
"""A part is sent SIGTERM this long before its limit and killed at it."""
TIMING_MARGIN_S = 20.0
"""The timing parts start no new measurement this long before their limit."""
TRAIN_RESERVE_S = 45.0
"""Of the train part's limit, kept for what is not training time: start, decoding Omniglot,
validations and the test (600 episodes); the rest is ``train.time_limit_minutes``."""
OMNIGLOT_FILES = ("images_background.zip", "images_evaluation.zip")


@dataclass
class Options:
    """What the command line asked for, checked."""

    dry_run: bool
    data: Path | None
    fixture: bool
    peers: Path
    out: Path
    parts: list[str]
    budget_s: float
    train_set: list[str]


def parse(argv: list[str] | None) -> Options:
    """Parse and check the command line; a problem exits with one line (argparse's error)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on any device")
    parser.add_argument(
        "--data",
        type=Path,
        help="folder holding omniglot/ (default: $FASTMETA_DATA; the dry run makes a tiny one "
        "when neither is given)",
    )
    parser.add_argument(
        "--peers",
        type=Path,
        default=REPO / ".gpu-carry" / "peers",
        help="wheels and source trees of the peers (default .gpu-carry/peers)",
    )
    parser.add_argument("--out", type=Path, help="results folder (default $OUT, else gpu-out)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--only", nargs="+", choices=PARTS, help="run only these parts")
    choice.add_argument("--skip", nargs="+", choices=PARTS, default=[], help="skip these parts")
    parser.add_argument(
        "--budget-s",
        type=float,
        help=f"total time limit of the parts (default {TOTAL_S:.0f}; dry run "
        f"{DRY_RUN_TOTAL_S:.0f})",
    )
    parser.add_argument(
        "--train-set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="extra settings for the training run, e.g. train.cuda_graph=true",
    )
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device here: run on the GPU machine, or pass --dry-run")
    budget = args.budget_s
    if budget is None:
        budget = DRY_RUN_TOTAL_S if args.dry_run else TOTAL_S
    if not budget > 0:
        parser.error(f"--budget-s must be a positive number of seconds, got {budget}")
    bad = [item for item in args.train_set if "=" not in item]
    if bad:
        parser.error(f"--train-set takes KEY=VALUE settings, got {bad[0]!r}")
    parts = [p for p in (args.only or PARTS) if p not in args.skip]
    if not parts:
        parser.error("--skip leaves no part to run")
    from_env = os.environ.get("FASTMETA_DATA")
    given = args.data or (Path(from_env) if from_env else None)
    needs_data = "train" in parts
    fixture = False
    if given is not None and not given.is_dir():
        parser.error(f"--data {given}: no such folder")
    if given is None or not _has_omniglot(given):
        if args.dry_run and args.data is None:
            fixture = True
        elif needs_data:
            where = given if given is not None else "--data (or $FASTMETA_DATA)"
            parser.error(
                f"no Omniglot in {where}: it needs omniglot/{' and omniglot/'.join(OMNIGLOT_FILES)}"
                " (carry .gpu-carry, see docs/PERFORMANCE.md), or pass --skip train"
            )
    out = args.out or Path(os.environ.get("OUT") or "gpu-out")
    return Options(args.dry_run, given, fixture, args.peers, out, parts, budget, args.train_set)


def _has_omniglot(root: Path) -> bool:
    return all((root / "omniglot" / name).is_file() for name in OMNIGLOT_FILES)


def shares(parts: list[str], budget_s: float) -> dict[str, float]:
    """The time limit of each of ``parts``: :data:`SHARES_S` scaled to fill ``budget_s``."""
    chosen = {p: SHARES_S[p] for p in parts}
    scale = budget_s / sum(chosen.values())
    return {p: round(s * scale, 1) for p, s in chosen.items()}


def machine() -> dict[str, Any]:
    """The hardware and software the numbers come from."""
    info: dict[str, Any] = {
        "cpu": f"{cpu_model()}, {os.cpu_count()} CPUs ({platform.machine()})",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "gpu": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        memory = props.total_memory / 2**30
        info["gpu"] = f"{props.name}, {memory:.0f} GiB, sm_{props.major}{props.minor}"
        info["driver"] = _command_output(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        )
    info["commit"] = _command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    return info


def _command_output(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def run_part(command: list[str], limit_s: float, log: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``command`` with its output in ``log``: SIGTERM at ``limit_s - GRACE_S``, SIGKILL at
    ``limit_s``. Returns its status (ok, failed (exit N), timed out) and seconds."""
    started = time.monotonic()
    with open(log, "w") as handle:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        status = "ok"
        try:
            code = process.wait(timeout=max(limit_s - GRACE_S, 1.0))
        except subprocess.TimeoutExpired:
            status = f"timed out at its limit of {limit_s:.0f} s"
            os.killpg(process.pid, signal.SIGTERM)
            try:
                code = process.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                code = process.wait()
    if status == "ok" and code != 0:
        status = f"failed (exit {code})"
    return {"status": status, "seconds": round(time.monotonic() - started, 1), "exit": code}


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join("    " + line for line in text[-lines:])


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Run:
    """One run of the parts: their commands, limits, results and the report."""

    def __init__(self, options: Options) -> None:
        self.o = options
        self.work = Path(tempfile.mkdtemp(prefix="fastmeta-gpu-"))
        self.logs = options.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = self._environment()
        self.started = time.monotonic()
        self.report: dict[str, Any] = {
            "command": " ".join(["python -m benchmarks.gpu", *sys.argv[1:]]),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "dry_run": options.dry_run,
            "machine": machine(),
            "data": "tiny generated fixture" if options.fixture else options.data,
            "budget_s": options.budget_s,
            "shares_s": None if options.dry_run else shares(options.parts, options.budget_s),
            "parts": {},
            "rows": [],
        }

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        paths = [str(self.work / "site"), str(REPO), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        data = self.o.data
        if self.o.fixture:
            data = write_omniglot(self.work / "data")
            env["FASTMETA_CACHE"] = str(self.work / "cache")
        if data is not None:
            env["FASTMETA_DATA"] = str(data.resolve())
        else:
            env.pop("FASTMETA_DATA", None)
        if self.o.dry_run:  # a shared CPU: one thread per process avoids oversubscription
            env["OMP_NUM_THREADS"] = "1"
        return env

    def limit(self, part: str) -> float:
        """The part's share; the last part also gets what earlier ones left unused. In the dry
        run, whose parts run side by side, each may take the whole budget."""
        if self.o.dry_run:
            return self.o.budget_s
        if part != self.o.parts[-1]:
            return shares(self.o.parts, self.o.budget_s)[part]
        return max(self.o.budget_s - (time.monotonic() - self.started), 1.0)

    def commands(self, part: str, limit: float) -> list[str] | str:
        """The part's command line, or why it does not run."""
        python, tiny = sys.executable, self.o.dry_run
        threads = ["--threads", "1"] if tiny else []
        if part == "setup":
            if not any(gpu_setup.peer_packages(self.o.peers)):
                return f"skipped: no peer wheels or source trees in {self.o.peers}"
            site = str(self.work / "site")
            return [python, "-m", "benchmarks.gpu_setup", "--peers", str(self.o.peers),
                    "--target", site]  # fmt: skip
        if part == "tests":
            plugin = ["-p", "no:cacheprovider", "-p", "benchmarks.gpu_tests"]
            return [python, "-m", "pytest", "-q", *plugin, *gpu_tests.candidate_files(REPO)]
        if part in ("timing", "compile"):
            rows = str(self.work / f"{part}.jsonl")
            deadline = str(max(limit - TIMING_MARGIN_S, 1.0))
            command = [python, "-m", "benchmarks.gpu_timing", "--part", part, "--rows", rows]
            command += ["--deadline-s", deadline]
            if tiny:
                command += ["--tiny", "--rounds", "1", "--seconds", "0.01", *threads]
                command += ["--backend", "aot_eager"]  # inductor compiles C++ for minutes
            return command
        limit_s = str(max(limit - (0.0 if tiny else TRAIN_RESERVE_S), 10.0))
        command = [python, "-m", "benchmarks.gpu_train", "--limit-s", limit_s]
        command += ["--run-dir", str(self.work / "train-run")]
        command += ["--result", str(self.work / "train.json"), *threads]
        if tiny:
            command.append("--dry-run")
        if self.o.train_set:
            command += ["--set", *self.o.train_set]
        return command

    def run(self) -> dict[str, Any]:
        """Every selected part; the report (also written after each part).

        On the GPU the parts run one after another, so no timing shares the device. The dry
        run starts every part after ``setup`` at once: its numbers mean nothing, and a shared
        CPU finishes it sooner so.
        """
        parts = self.o.parts
        if not self.o.dry_run:
            for part in parts:
                self.finish(part, self.start(part))
            return self.report
        if parts[0] == "setup":
            self.finish("setup", self.start("setup"))
            parts = parts[1:]
        with ThreadPoolExecutor(max_workers=max(len(parts), 1)) as pool:
            futures = {pool.submit(self.start, part): part for part in parts}
            for future in as_completed(futures):
                self.finish(futures[future], future.result())
        return self.report

    def start(self, part: str) -> dict[str, Any]:
        """Run one part to its end or its limit; its status, seconds and log."""
        limit = self.limit(part)
        command = self.commands(part, limit)
        if isinstance(command, str):
            return {"status": command, "seconds": 0.0}
        print(f"{part}: running (limit {limit:.0f} s) ...", flush=True)
        log = self.logs / f"{part}.log"
        env = dict(self.env)
        if part == "tests":
            env[gpu_tests.REPORT_ENV] = str(self.work / "tests.jsonl")
        result = run_part(command, limit, log, env)
        result.update(limit_s=round(limit, 1), log=str(log))
        return result

    def finish(self, part: str, result: dict[str, Any]) -> None:
        """Record a finished part, say how it went and rewrite the JSON."""
        self.report["parts"][part] = result
        took = f" in {result['seconds']:.0f} s" if "log" in result else ""
        print(f"{part}: {result['status']}{took}", flush=True)
        if result["status"] != "ok" and "log" in result:
            print(_tail(Path(result["log"])), flush=True)
        self.collect(part)
        done = self.report["parts"]
        self.report["parts"] = {name: done[name] for name in PARTS if name in done}
        self.write()

    def collect(self, part: str) -> None:
        """Read what the part left in the work folder into the report."""
        if part == "tests":
            self.report["tests"] = gpu_tests.summarize(_read_lines(self.work / "tests.jsonl"))
        elif part in ("timing", "compile"):
            rows = [
                dict(row, part=name)
                for name in ("timing", "compile")
                for row in _read_lines(self.work / f"{name}.jsonl")
            ]
            gpu_report.add_ratios(rows)
            self.report["rows"] = rows
        elif part == "train":
            result = self.work / "train.json"
            train = json.loads(result.read_text()) if result.exists() else {
                **read_metrics(self.work / "train-run" / "metrics.jsonl", 0.98),
                "device": "cpu" if self.o.dry_run else "cuda",
            }  # fmt: skip
            train["status"] = self.report["parts"]["train"]["status"]
            self.report["train"] = train

    def close(self) -> None:
        """Remove the work folder (the fixture, caches, the training run); results stay."""
        shutil.rmtree(self.work, ignore_errors=True)

    def write(self) -> None:
        path = self.o.out / "gpu.json"
        path.write_text(json.dumps(self.report, indent=2, default=str))

    def summary(self) -> str:
        """The header, the table, the parts' times and the targets, as markdown."""
        m = self.report["machine"]
        headline = workloads(self.o.dry_run)[0].label
        kind = "DRY RUN (tiny sizes on a CPU: the numbers mean nothing)" if self.o.dry_run else ""
        parts = [f"{name} {p['status']} ({p['seconds']:.0f} s)"
                 for name, p in self.report["parts"].items()]  # fmt: skip
        lines = [
            f"fastmeta GPU run {kind}, {self.report['date']}",
            f"{m['gpu'] or 'no GPU'}; {m['cpu']}; torch {m['torch']} (CUDA {m['cuda']}, "
            f"cuDNN {m['cudnn']}); Python {m['python']}; commit {m['commit']}",
            "",
            gpu_report.table(self.report),
            "",
            "parts: " + "; ".join(parts),
            f"targets on '{headline}':",
            *("- " + line for line in gpu_report.targets(self.report, headline)),
        ]
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    options = parse(argv)
    run = Run(options)
    try:
        run.run()
    finally:
        run.close()
    text = run.summary()
    (options.out / "gpu.md").write_text(text + "\n")  # before printing: stdout may be gone
    run.write()
    print("\n" + text)
    print(f"\nwritten: {options.out / 'gpu.json'}, {options.out / 'gpu.md'}, {run.logs}/")


if __name__ == "__main__":
    main()

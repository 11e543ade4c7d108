"""docs/OWN_DATA.md run exactly as written: generate, train, adapt, the Python API, export, and
the torch-only loading snippet in a fresh interpreter where fastmeta cannot be imported."""

from __future__ import annotations

import csv
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fastmeta.cli import main as fastmeta_main
from fastmeta.datasets.patterns import main as patterns_main

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "OWN_DATA.md"
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)
NO_FASTMETA = "import sys; sys.modules['fastmeta'] = None\n"  # importing it now fails


def guide_blocks() -> list[tuple[str, str]]:
    return [(kind, body) for kind, body in BLOCK.findall(GUIDE.read_text())]


def run_command(line: str) -> None:
    words = shlex.split(line)
    if words[:3] == ["python", "-m", "fastmeta.datasets.patterns"]:
        assert patterns_main(words[3:]) == 0
    elif words[0] == "fastmeta":
        assert fastmeta_main(words[1:]) == 0
    else:
        raise AssertionError(f"the guide runs a command this test does not know: {line}")


def accuracy(rows: list[tuple[str, str]]) -> float:
    """Share of (file under query/<class>/, predicted class) pairs that are right."""
    return sum(Path(file).parent.name == label for file, label in rows) / len(rows)


@pytest.mark.protonet_export
def test_the_guide_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FASTMETA_CACHE", str(tmp_path / "cache"))
    blocks = guide_blocks()
    assert [kind for kind, _ in blocks] == ["bash", "bash", "bash", "python", "bash", "python"]
    for kind, body in blocks:
        if kind == "bash":
            for line in body.strip().splitlines():
                run_command(line)
        elif "import fastmeta" in body:
            exec(compile(body, str(GUIDE), "exec"), {})
        else:
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            done = subprocess.run(
                [sys.executable, "-c", NO_FASTMETA + body], capture_output=True, text=True,
                cwd=tmp_path, env=env, timeout=600, check=True,
            )  # fmt: skip
            snippet_output = done.stdout
    printed = capsys.readouterr().out
    assert "settings chosen for this folder and machine" in printed
    assert "sampler.ways=5 sampler.shots=5 sampler.queries=10" in printed
    assert "30 classes, 600 images used (resized to 24x24 by centre crop, colour)" in printed
    assert re.search(r"accuracy \d+/50 = [\d.]+ %\nconfusion matrix", printed)
    assert "nothing left out" in printed and (tmp_path / "runs/shapes/split.yaml").is_file()
    with open(tmp_path / "predictions.csv") as handle:
        rows = [(row["file"], row["predicted_class"]) for row in csv.DictReader(handle)]
    assert len(rows) == 50 and accuracy(rows) >= 0.7  # 5 new classes: chance is 0.2
    exported = [tuple(line.split()[:2]) for line in snippet_output.strip().splitlines()]
    assert len(exported) == 50 and accuracy(exported) >= 0.7
    with open(tmp_path / "predictions_api.csv") as handle:
        assert [(r["file"], r["predicted_class"]) for r in csv.DictReader(handle)] == rows

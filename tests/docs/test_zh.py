"""The Chinese quickstart (docs/zh/) runs, and stays in step with the English pages.

Every command in a ``bash`` block of a zh page must be a command of the English documentation
(README.md or an English page of docs/, the same text up to spacing), so a command changed in
English and not in Chinese fails here; and every command is run, in the page's order, in a fresh
folder, by the same entry points the shell commands start (``fastmeta.cli.main`` for
``fastmeta``, the module's ``main`` for ``python -m``), with tiny settings appended to the
commands that train (later ``key=value`` settings override earlier ones). ``pip install`` lines
are checked by .ci/docs-and-package, which installs the wheel; ``export FASTMETA_DATA=...`` is
the test's own environment.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from fastmeta.cli import main as fastmeta_main
from fastmeta.datasets import patterns
from tests.miniimagenet_subset import link_subset

ROOT = Path(__file__).resolve().parents[2]
ZH = ROOT / "docs" / "zh"
ENGLISH = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

SINE = [
    "train.iterations=2",
    "train.val_every=1",
    "train.val_episodes=4",
    "eval.episodes=4",
    "model.layers=[8]",
    "sampler.meta_batch=2",
]
OMNIGLOT = [
    "train.iterations=2",
    "train.val_every=1",
    "train.val_episodes=2",
    "eval.episodes=2",
    "model.hidden=8",
    "sampler.meta_batch=2",
    "train.checkpoint_every=1",
]
MINIIMAGENET = [
    "model.hidden=8",
    "sampler.ways=5",
    "sampler.shots=1",
    "sampler.queries=1",
    "sampler.meta_batch=1",
    "sampler.test_ways=5",
    "sampler.test_shots=1",
    "sampler.test_queries=1",
    "train.iterations=2",
    "train.val_every=1",
    "train.val_episodes=2",
    "eval.episodes=2",
    "eval.batch_size=2",
    "data.image_size=32",
]
FOLDER = [
    "train.iterations=4",
    "train.val_every=2",
    "train.val_episodes=4",
    "eval.episodes=4",
    "model.hidden=8",
]
# what each training or evaluation command of the pages gets appended, by its first words
TINY = {
    "fastmeta train sine-maml": SINE,
    "fastmeta train maml-omniglot-5w1s": OMNIGLOT,
    "fastmeta train protonet-omniglot-5w1s data.dataset=miniimagenet": MINIIMAGENET,
    "fastmeta train --data": FOLDER,
    "fastmeta eval": ["eval.episodes=2"],
}
NEEDS = {"omniglot.md": ("omniglot",), "settings.md": ("omniglot", "miniimagenet")}


def bash_commands(page: Path) -> list[str]:
    """The command lines of the page's ``bash`` blocks (continuation lines joined)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip():
                commands.append(" ".join(line.split()))
    return commands


def english_text() -> str:
    return " ".join(" ".join(path.read_text().split()) for path in ENGLISH)


PAGES = sorted(p.name for p in ZH.glob("*.md"))


def test_every_page_is_checked() -> None:
    assert PAGES == ["index.md", "omniglot.md", "own-data.md", "settings.md", "sine.md"]
    assert all(bash_commands(ZH / page) for page in PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_commands_are_those_of_the_english_pages(page: str) -> None:
    english = english_text()
    missing = [c for c in bash_commands(ZH / page) if c not in english]
    assert not missing, f"docs/zh/{page} has commands no English page has: {missing}"


def small_miniimagenet(base: Path) -> Path:
    """A copy of the real mini-ImageNet layout with the first 2 real images of the first 5
    classes of each split (links to the real files)."""
    real = Path(os.environ["FASTMETA_DATA"]) / "miniimagenet"
    return link_subset(real, base / "miniimagenet", per_class=2)


def run_command(command: str, extra: list[str]) -> int:
    """Run one documented command as the shell would start it; its exit status."""
    words = shlex.split(command)
    if words[:3] == ["python", "-m", "fastmeta.datasets.patterns"]:
        return patterns.main(words[3:])
    assert words[0] == "fastmeta", f"not a command this test knows how to run: {command}"
    for prefix, tiny in TINY.items():
        if command.startswith(prefix):
            words += tiny
    try:
        return fastmeta_main([*words[1:], *extra])
    except SystemExit as stop:  # --version: argparse prints it and exits 0
        return int(stop.code or 0)


@pytest.mark.parametrize(
    "page",
    [  # own-data.md exports a ProtoNets classifier
        pytest.param(page, marks=pytest.mark.protonet_export) if page == "own-data.md" else page
        for page in PAGES
    ],
)
def test_commands_run(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = os.environ.get("FASTMETA_DATA")
    for needed in NEEDS.get(page, ()):
        if not base or not (Path(base) / needed).is_dir():
            pytest.skip(f"set FASTMETA_DATA to a folder holding {needed}/ (the real files)")
    if base:  # a relative FASTMETA_DATA (CI's ../shared/data) must survive the chdir below
        monkeypatch.setenv("FASTMETA_DATA", str(Path(base).resolve()))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("FASTMETA_CACHE", os.environ.get("FASTMETA_CACHE", str(tmp_path / "cache")))
    mini = []
    if page == "settings.md":
        mini = [f"data.root={small_miniimagenet(tmp_path)}"]
    ran = 0
    for command in bash_commands(ZH / page):
        if command.startswith(("pip install", "export FASTMETA_DATA=")):
            continue
        extra = mini if "data.dataset=miniimagenet" in command else []
        status = run_command(command, extra)
        out = capsys.readouterr()
        assert status == 0, f"{command}\n{out.out[-2000:]}\n{out.err[-2000:]}"
        ran += 1
    assert ran > 0

"""``fastmeta presets``, ``config``, ``--version`` and the help: what a new user reads first,
printed without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from fastmeta import __version__
from fastmeta.cli import main
from fastmeta.config import load_yaml, to_dict
from fastmeta.presets import load_config, preset_info, preset_names
from fastmeta.run.settings import apply_run_overrides, resolve_config
from fastmeta.run_config import RunConfig


def test_presets_show_whole_descriptions_and_lengths(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in preset_names():
        assert f"\n{name}\n" in f"\n{out}"
    words = preset_info("baseline-omniglot-5w1s").description.split()
    assert " ".join(words[-6:]) in " ".join(out.split())  # the last words of a long description
    assert "15,000 meta-steps" in out


def test_config_prints_the_resolved_configuration_with_every_key_described(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "reptile-omniglot-5w1s", "train.iterations=10"]) == 0
    out = capsys.readouterr().out
    expected = resolve_config(
        apply_run_overrides(load_config("reptile-omniglot-5w1s"), ["train.iterations=10"])
    )
    printed = load_yaml(RunConfig, out)
    assert to_dict(printed.train) == to_dict(expected.train)
    assert printed.algorithm.options["outer_lr"] == 1.0  # the method's own settings, defaults too
    body = [line for line in out.splitlines() if line and not line.startswith("#")]
    described = [line for line in body if "  # " in line]
    assert len(described) == len(body)  # every key has its one-line description
    assert "# meta-steps to train" in out
    assert yaml.safe_load(out)["data"]["split"] == "vinyals"


def test_version_and_train_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"fastmeta {__version__}"
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "train.iterations=2000" in out and "--resume" in out and "--force" in out


@pytest.mark.parametrize("argv", [["--help"], ["presets"], ["config", "maml-omniglot-5w1s"]])
def test_these_commands_start_without_torch(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from fastmeta.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)

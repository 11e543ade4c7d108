"""Without the plot extra, every picture is one line naming it, and nothing else is lost."""

import pytest

from fastmeta.cli import main
from fastmeta.pictures import PlotExtraMissing, pyplot


def test_pyplot_names_the_extra_to_install(no_matplotlib: None) -> None:
    with pytest.raises(PlotExtraMissing, match=r"pip install 'fastmeta\[plot\]'"):
        pyplot()


def test_fastmeta_plot_says_so_in_one_line(
    no_matplotlib: None, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        '{"step": 1, "phase": "val", "accuracy": 0.5, "train_seconds": 1.0}\n'
    )
    picture = tmp_path / "p.png"
    assert main(["plot", str(run), "--against-time", str(picture)]) == 1
    needs = "drawing a picture needs matplotlib: pip install 'fastmeta[plot]'"
    assert capsys.readouterr().err == f"fastmeta plot: {needs}\n"
    assert not picture.exists()

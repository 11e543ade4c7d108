"""matplotlib for every picture fastmeta draws (the optional ``plot`` extra): imported on first
use, drawn off-screen, and a one-line error naming the extra when it is not installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


class PlotExtraMissing(RuntimeError):
    """matplotlib is not installed; the message says how to install it."""


def require_plot_extra(what: str = "drawing a picture") -> None:
    """Raise :class:`PlotExtraMissing` before any work when matplotlib is missing."""
    if importlib.util.find_spec("matplotlib") is None:
        raise PlotExtraMissing(f"{what} needs matplotlib: pip install 'fastmeta[plot]'")


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    require_plot_extra()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path, dpi: int = 110) -> Path:
    """Lay out ``figure``, write it to ``path`` (making its folder) and free it."""
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    pyplot().close(figure)
    return path

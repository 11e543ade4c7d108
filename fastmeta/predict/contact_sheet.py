"""A contact sheet: a PNG grid of query images, each titled with its predicted class.

With the true class known (the query folder named by class) a title reads ``true -> predicted``,
green when right and red when wrong, and the mistakes come first. Needs matplotlib (the ``plot``
extra), imported only here.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

from fastmeta.datasets.paths import PathLike
from fastmeta.predict.model import Predictions

MAX_IMAGES = 64


def check_plot_extra() -> None:
    """Raise, with the line to install it, when matplotlib is missing (before any work)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise RuntimeError("a contact sheet needs matplotlib: pip install 'fastmeta[plot]'")


def draw_contact_sheet(
    predictions: Predictions, path: PathLike, max_images: int = MAX_IMAGES
) -> tuple[Path, int]:
    """Write the sheet of at most ``max_images`` queries (mistakes first when the truth is
    known) to ``path``; returns the path and the number of images drawn."""
    check_plot_extra()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if predictions.images is None or not predictions.files:
        raise ValueError("no classified query image to draw on a contact sheet")
    predicted, confidence, truth = (
        predictions.predicted, predictions.confidence, predictions.truth,
    )  # fmt: skip
    order = sorted(
        range(len(predictions.files)),
        key=lambda i: (truth[i] is None or truth[i] == predicted[i], i),
    )[:max_images]
    columns = min(8, len(order))
    rows = math.ceil(len(order) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, order, strict=False):
        image = predictions.images[i].permute(1, 2, 0).numpy()
        grey = image.shape[2] == 1
        ax.imshow(image[..., 0] if grey else image, cmap="gray" if grey else None, vmin=0, vmax=1)
        label = f"{predicted[i]} {confidence[i]:.2f}"
        colour = "black"
        if truth[i] is not None:
            label = f"{truth[i]} ->\n{label}"
            colour = "green" if truth[i] == predicted[i] else "red"
        ax.set_title(label, fontsize=7, color=colour)
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out, len(order)

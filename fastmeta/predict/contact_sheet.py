"""A contact sheet: a PNG grid of query images, each titled with its predicted class.

With the true class known (the query folder named by class) a title reads ``true -> predicted``,
green when right and red when wrong, and the mistakes come first. Needs matplotlib (the ``plot``
extra), imported only here.
"""

from __future__ import annotations

import math
from pathlib import Path

from fastmeta.datasets.paths import PathLike
from fastmeta.pictures import pyplot, save_figure
from fastmeta.predict.model import Predictions

MAX_IMAGES = 64


def draw_contact_sheet(
    predictions: Predictions, path: PathLike, max_images: int = MAX_IMAGES
) -> tuple[Path, int]:
    """Write the sheet of at most ``max_images`` queries (mistakes first when the truth is
    known) to ``path``; returns the path and the number of images drawn."""
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
    size = (1.9 * columns, 2.2 * rows)
    figure, axes = pyplot().subplots(rows, columns, figsize=size, squeeze=False)
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
    return save_figure(figure, Path(path), dpi=100), len(order)

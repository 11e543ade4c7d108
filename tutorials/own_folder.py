"""Tutorial 6: a few-shot classifier for your own folder of images.

One sub-folder per class (its name is the class name), any image format, size or colour mode.
Few-shot learning needs many classes more than many images per class: about 30 classes of 15-20
images is a small but workable start. This script

1. writes an example folder (synthetic patterns) unless you give your own with ``--data``,
2. meta-trains Prototypical Networks on it, as ``fastmeta train --data FOLDER`` does,
3. adapts the trained model to 5 classes it has never seen, from 5 images each, and labels
   10 more images of each, in Python (``fastmeta.load(run).adapt(support)``),
4. exports that classifier as a ``torch.export`` program and checks it gives the same
   probabilities, with torch alone.

    python tutorials/own_folder.py                              # the example folder
    python tutorials/own_folder.py --data my_images --support new/support --query new/query
    python tutorials/own_folder.py --tiny                       # what the test suite runs

docs/OWN_DATA.md is the same path as shell commands.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch

import fastmeta
from fastmeta.cli import main as fastmeta_command
from fastmeta.datasets.patterns import write_pattern_folder


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description="A few-shot classifier for your own images")
    parser.add_argument("--data", type=Path, help="your folder: one sub-folder per class")
    parser.add_argument("--support", type=Path, help="new classes, a few images each")
    parser.add_argument("--query", type=Path, help="images of those classes to label")
    parser.add_argument("--work", type=Path, default=Path("runs/tutorial-own-folder"))
    parser.add_argument("--tiny", action="store_true", help="16 px, 8 filters, 4 steps")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)

    # 1. The folder. The example: 30 classes of 20 images to train on, and 5 other classes
    #    (another seed) split into support/ (5 images each) and query/ (10 each, to label).
    if args.data is None:
        args.data = write_pattern_folder(args.work / "shapes", size=24)
        new = write_pattern_folder(
            args.work / "new", classes=5, images=15, query=10, seed=1, size=24
        )
        args.support, args.query = new / "support", new / "query"
    if args.support is None or args.query is None:
        parser.error("with --data, give --support and --query folders of new classes too")

    # 2. Meta-train: the preset protonet-folder (5-way 5-shot episodes, 10 queries per class),
    #    shrunk for this toy folder. The command prints the classes it found, every file it left
    #    out and why, and the train/val/test class split it wrote to RUN/split.yaml.
    run = args.work / "run"
    if args.tiny:
        settings = [
            "data.image_size=16",
            "model.hidden=8",
            "train.iterations=4",
            "train.val_every=2",
            "train.val_episodes=4",
            "eval.episodes=4",
        ]
    else:
        settings = [
            "data.image_size=24",
            "model.hidden=32",
            "train.iterations=50",
            "train.val_every=25",
            "train.val_episodes=10",
            "eval.episodes=20",
        ]
    argv_train = ["train", "--data", str(args.data), "--out", str(run), "--no-progress"]
    status = fastmeta_command([*argv_train, *settings])  # what `fastmeta train ...` runs
    if status != 0:
        raise SystemExit(f"training failed (exit status {status})")
    tested = json.loads((run / "report.json").read_text())["accuracy"]  # mean, ci95, median...
    print(f"test on the folder's held-out classes: {100 * tested['mean']:.1f} %")

    # 3. New classes, in Python: adapt on the support folder, label the query images.
    classifier = fastmeta.load(run).adapt(args.support)
    predictions = classifier.classify(args.query)
    truth = [Path(name).parts[0] for name in predictions.files]  # query/<class>/<file>
    right = sum(p == t for p, t in zip(predictions.predicted, truth, strict=True))
    accuracy = right / len(truth)
    print(
        f"new classes {classifier.classes}: {right} of {len(truth)} query images right "
        f"({100 * accuracy:.0f} %; chance is {100 / len(classifier.classes):.0f} %)"
    )
    predictions.write_csv(args.work / "predictions.csv")

    # 4. Export: a torch.export program with the normalisation and the support set inside.
    exported = classifier.export(args.work / "classifier.pt2")
    extra = {"fastmeta.json": ""}
    program = torch.export.load(str(exported), extra_files=extra).module()
    info = json.loads(extra["fastmeta.json"])
    side = info["image_size"]
    images = torch.rand(4, 3 if info["mode"] == "RGB" else 1, side, side)  # [N, C, H, W] in [0, 1]
    with torch.no_grad():
        gap = (program(images) - classifier.predict(images)).abs().max().item()
    assert gap < 1e-4, f"the exported program differs from the classifier by {gap:.1e}"
    print(f"exported {exported} ({info['classes']}): same probabilities (max difference {gap:.1e})")
    return {"accuracy": accuracy, "test_accuracy": float(tested["mean"]), "export_gap": gap}


if __name__ == "__main__":
    main()

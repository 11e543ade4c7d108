"""``fastmeta adapt`` and ``fastmeta export``: a trained run on new classes."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastmeta.predict import AdaptedClassifier
    from fastmeta.predict.model import Predictions


def adapt(args: argparse.Namespace) -> int:
    from fastmeta.predict import load
    from fastmeta.run.build import resolve_device

    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1; got {args.top_k}")
    if args.contact_sheet is not None:
        from fastmeta.pictures import require_plot_extra

        require_plot_extra("a contact sheet")
    classifier = load(args.run, resolve_device(args.device)).adapt(args.support)
    _print_support(classifier)
    predictions = classifier.classify(args.query)
    for name, reason in predictions.skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    predictions.write_csv(args.out, top_k=args.top_k)
    counts = Counter(predictions.predicted)
    summary = ", ".join(f"{c} {counts[c]}" for c in classifier.classes if counts[c])
    print(f"classified {len(predictions.files)} images ({summary}); wrote {args.out}")
    if predictions.labelled:
        print(_accuracy_report(predictions))
    if args.contact_sheet is not None:
        from fastmeta.predict.contact_sheet import draw_contact_sheet

        path, drawn = draw_contact_sheet(predictions, args.contact_sheet)
        print(f"wrote {path} ({drawn} of {len(predictions.files)} images)")
    return 0


def _accuracy_report(predictions: Predictions) -> str:
    """Accuracy over the queries whose folder names their class, and the confusion matrix."""
    known, total = len(predictions.labelled), len(predictions.files)
    right = round(float(predictions.accuracy or 0.0) * known)
    of = "" if known == total else f" (the {known} of {total} images whose folder names a class)"
    lines = [f"accuracy {right}/{known} = {100 * right / known:.1f} %{of}"]
    classes = predictions.classes
    matrix = predictions.confusion().tolist()
    label = max(len(c) for c in classes) + len(str(len(classes))) + 1
    cell = max(3, len(str(max(max(row) for row in matrix))))
    lines.append("confusion matrix (rows: true class; columns: predicted class, same numbers)")
    heads = " ".join(f"{i:>{cell}}" for i in range(len(classes)))
    lines.append(f"{'':<{label}}  {heads}  recall")
    for i, (name, row) in enumerate(zip(classes, matrix, strict=True)):
        cells = " ".join(f"{n:>{cell}}" for n in row)
        recall = f"{100 * row[i] / sum(row):.0f} %" if sum(row) else "-"
        lines.append(f"{f'{i} {name}':<{label}}  {cells}  {recall:>6}")
    return "\n".join(lines)


def export(args: argparse.Namespace) -> int:
    from fastmeta.predict import load
    from fastmeta.run.build import resolve_device

    classifier = load(args.run, resolve_device(args.device)).adapt(args.support)
    _print_support(classifier)
    path = classifier.export(args.out)
    print(f"wrote {path}: {len(classifier.classes)} classes ({', '.join(classifier.classes)})")
    return 0


def _print_support(classifier: AdaptedClassifier) -> None:
    print(f"support: {len(classifier.classes)} classes: {', '.join(classifier.classes)}")
    report = classifier.support_report
    if report is not None and report.summary():
        print(f"left out of the support set:\n{report.summary()}", file=sys.stderr)

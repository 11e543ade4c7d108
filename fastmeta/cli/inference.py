"""``fastmeta adapt`` and ``fastmeta export``: a trained run on new classes."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastmeta.predict import AdaptedClassifier


def adapt(args: argparse.Namespace) -> int:
    from fastmeta.predict import load

    classifier = load(args.run).adapt(args.support)
    _print_support(classifier)
    predictions = classifier.classify(args.query)
    for name, reason in predictions.skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    predictions.write_csv(args.out)
    counts = Counter(predictions.predicted)
    summary = ", ".join(f"{c} {counts[c]}" for c in classifier.classes if counts[c])
    print(f"classified {len(predictions.files)} images ({summary}); wrote {args.out}")
    return 0


def export(args: argparse.Namespace) -> int:
    from fastmeta.predict import load

    classifier = load(args.run).adapt(args.support)
    _print_support(classifier)
    path = classifier.export(args.out)
    print(f"wrote {path}: {len(classifier.classes)} classes ({', '.join(classifier.classes)})")
    return 0


def _print_support(classifier: AdaptedClassifier) -> None:
    print(f"support: {len(classifier.classes)} classes: {', '.join(classifier.classes)}")
    report = classifier.support_report
    if report is not None and report.summary():
        print(f"left out of the support set:\n{report.summary()}", file=sys.stderr)

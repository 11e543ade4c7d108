"""The meta-batch of Meta-World's meta-test: the largest that deals every class's test goals out
evenly to its sub-environments, as ``make_vec`` demands."""

from __future__ import annotations

import pytest

from fastmeta.rl.metaworld_batch import evaluation_batch


@pytest.mark.parametrize(
    ("tasks", "classes", "wanted", "expected"),
    [
        (50, 1, 20, 10),  # ML1: 20 does not divide its 50 test goals; 10 does
        (50, 1, 50, 50),
        (50, 1, 25, 25),
        (50, 5, 20, 10),  # ML10's 5 test classes: 4 a class does not divide 50, 2 does
        (50, 5, 3, 5),  # at least one sub-environment a class
        (7, 1, 6, 1),  # a prime count: one at a time
    ],
)
def test_the_batch_splits_every_class_evenly(tasks, classes, wanted, expected):
    batch = evaluation_batch(tasks, classes, wanted)
    assert batch == expected
    assert batch % classes == 0 and tasks % (batch // classes) == 0


def test_an_empty_benchmark_is_refused():
    with pytest.raises(ValueError, match="at least one class"):
        evaluation_batch(0, 1, 20)

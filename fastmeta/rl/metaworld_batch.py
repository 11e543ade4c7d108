"""How many test tasks Meta-World's meta-test vector environments can hold at once.

``gymnasium.make_vec("Meta-World/ML1-test" | "Meta-World/ML10-test", meta_batch_size=B)`` gives
each task class ``B / classes`` sub-environments and deals the class's test goals out to them
evenly; it refuses (an ``AssertionError`` deep inside Meta-World) a ``B`` that does not split
them so, e.g. ML1's 50 test goals into 20. Kept free of Meta-World's import, so it is tested
everywhere.
"""

from __future__ import annotations


def evaluation_batch(tasks_per_class: int, classes: int, wanted: int) -> int:
    """The largest meta-batch size no larger than ``wanted`` (but at least one sub-environment
    per class) that Meta-World accepts for ``classes`` task classes of ``tasks_per_class``
    goals each."""
    if tasks_per_class < 1 or classes < 1:
        raise ValueError(f"need at least one class and goal, got {classes} and {tasks_per_class}")
    per_class = max(wanted // classes, 1)
    while tasks_per_class % per_class:
        per_class -= 1
    return per_class * classes

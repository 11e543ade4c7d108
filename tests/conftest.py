"""Fixtures shared by the whole suite."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest
import torch

import fastmeta.pictures as pictures

# torch.export of a ProtoNets classifier (its support sliced off the batch) with a batch of any
# size from 1 works on torch 2.13 and is refused by torch 2.4 (a one-line error, tested in
# tests/cli/test_inference.py); the torches between were not tried
EXPORTS_PROTONET = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 13)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "protonet_export: exports a ProtoNets classifier (skipped on torch < 2.13)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="this torch's torch.export refuses a ProtoNets batch of 1")
    for item in items:
        if not EXPORTS_PROTONET and item.get_closest_marker("protonet_export"):
            item.add_marker(skip)


@pytest.fixture
def float64() -> Iterator[None]:
    """Run the test with float64 as torch's default dtype (the reference comparisons)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the test as without the plot extra: matplotlib is not found."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        pictures.importlib.util, "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )  # fmt: skip

"""The reported statistics: mean, 95% CI = 1.96 * std / sqrt(n), median, non-finite count."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastmeta.train.evaluate import summarize


def test_confidence_interval_is_1_96_std_over_sqrt_n():
    values = np.random.default_rng(0).uniform(0.8, 1.0, size=600)
    summary = summarize(torch.tensor(values))
    assert summary.mean == pytest.approx(values.mean())
    assert summary.ci95 == pytest.approx(1.96 * values.std(ddof=1) / math.sqrt(600))
    assert summary.median == pytest.approx(np.median(values))
    assert summary.count == 600 and summary.non_finite == 0


def test_non_finite_episodes_are_counted_and_excluded():
    summary = summarize(torch.tensor([1.0, float("nan"), 3.0, float("inf")]))
    assert (summary.mean, summary.count, summary.non_finite) == (2.0, 2, 2)
    assert "2 non-finite of 4" in summary.format()

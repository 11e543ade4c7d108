"""Task transforms: arguments that keep no class are refused, whichever transform comes first."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from fastmeta.data import FilterLabels, FusedNWaysKShots, LoadData, MetaDataset, TaskDataset


def dataset() -> MetaDataset:
    labels = torch.arange(6).repeat_interleave(3)
    return MetaDataset(TensorDataset(torch.arange(18.0).unsqueeze(1), labels))


def test_fused_nways_kshots_with_no_filter_label_is_refused_like_filter_labels():
    meta = dataset()
    with pytest.raises(ValueError, match=r"filter_labels=\[\]\) keeps no class"):
        FusedNWaysKShots(meta, n=2, k=1, filter_labels=[])
    with pytest.raises(ValueError, match="at least one label"):
        FilterLabels(meta, [])


def test_fused_nways_kshots_first_draws_only_from_its_filter_labels():
    meta = dataset()
    fused = FusedNWaysKShots(meta, n=2, k=3, filter_labels=[1, 4, 5])
    seen = set()
    for seed in range(30):
        _, y = TaskDataset(meta, [fused, LoadData(meta)], seed=seed)[0]
        assert set(y.tolist()) <= {1, 4, 5} and len(set(y.tolist())) == 2
        seen |= set(y.tolist())
    assert seen == {1, 4, 5}

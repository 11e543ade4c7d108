"""Prototype heads against distances written out per query and class."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastmeta.heads.prototypes import Prototypes


def test_prototypes_against_a_loop():
    g = torch.Generator().manual_seed(0)
    support, query = torch.randn(2, 6, 4, generator=g), torch.randn(2, 5, 4, generator=g)
    labels = torch.tensor([0, 0, 1, 1, 2, 2]).repeat(2, 1)
    euclidean = Prototypes("euclidean")(support, labels, query, 3)
    cosine = Prototypes("cosine", scale=10.0)(support, labels, query, 3)
    for t in range(2):
        means = [support[t][labels[t] == c].mean(0) for c in range(3)]
        for q in range(5):
            for c in range(3):
                d = (query[t, q] - means[c]).pow(2).sum()
                torch.testing.assert_close(euclidean[t, q, c], -d)
                cos = F.cosine_similarity(query[t, q], means[c], dim=0)
                torch.testing.assert_close(cosine[t, q, c], 10 * cos)

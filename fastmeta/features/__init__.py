"""Frozen-feature episodes: every image of a split embedded once by a frozen network, cached on
disk, and episodes drawn over the features exactly as over the images, so that a test-time head
(:mod:`fastmeta.heads`) is scored on hundreds of episodes in seconds.

The modules are imported on first use (see :mod:`fastmeta.lazy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastmeta.lazy import lazy_attributes

if TYPE_CHECKING:
    from fastmeta.features.cache import cached_features as cached_features
    from fastmeta.features.cache import feature_key as feature_key
    from fastmeta.features.episodes import FeatureStore as FeatureStore
    from fastmeta.features.episodes import FeatureTaskSet as FeatureTaskSet
    from fastmeta.features.extract import embed_store as embed_store

_WHERE = {
    "FeatureStore": "episodes",
    "FeatureTaskSet": "episodes",
    "cached_features": "cache",
    "embed_store": "extract",
    "feature_key": "cache",
}
__all__ = list(_WHERE)
__getattr__ = lazy_attributes(__name__, {k: f"{__name__}.{m}" for k, m in _WHERE.items()})

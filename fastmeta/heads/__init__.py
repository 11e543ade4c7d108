"""Test-time heads: how a new task's classifier is made from its support set.

Feature heads (:class:`~fastmeta.heads.base.FeatureHead`) read support and query features
``[B, S, D]`` and ``[B, Q, D]`` (from frozen-feature episodes, :mod:`fastmeta.features`, or an
encoder run on image episodes): prototypes, logistic regression, a linear probe, ridge
regression and the SVM. Image heads (:class:`~fastmeta.heads.base.ImageHead`) also change the
encoder: full fine-tuning (P>M>F's test-time step) and a linear probe on augmented images.
:func:`~fastmeta.heads.registry.head` builds one by name;
:func:`~fastmeta.heads.compare.compare_heads`
scores several on the same episodes. The modules are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastmeta.lazy import lazy_attributes

if TYPE_CHECKING:
    from fastmeta.heads.base import FeatureHead as FeatureHead
    from fastmeta.heads.base import ImageHead as ImageHead
    from fastmeta.heads.closed_form import SVM as SVM
    from fastmeta.heads.closed_form import Ridge as Ridge
    from fastmeta.heads.compare import compare_heads as compare_heads
    from fastmeta.heads.finetune import FineTune as FineTune
    from fastmeta.heads.linear import LinearProbe as LinearProbe
    from fastmeta.heads.logistic import LogisticRegression as LogisticRegression
    from fastmeta.heads.prototypes import Prototypes as Prototypes
    from fastmeta.heads.registry import HEADS as HEADS
    from fastmeta.heads.registry import head as head

_WHERE = {
    "FeatureHead": "base",
    "FineTune": "finetune",
    "HEADS": "registry",
    "ImageHead": "base",
    "LinearProbe": "linear",
    "LogisticRegression": "logistic",
    "Prototypes": "prototypes",
    "Ridge": "closed_form",
    "SVM": "closed_form",
    "compare_heads": "compare",
    "head": "registry",
}
__all__ = list(_WHERE)
__getattr__ = lazy_attributes(__name__, {k: f"{__name__}.{m}" for k, m in _WHERE.items()})

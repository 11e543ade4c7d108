"""A package that is installed but fails at import, as timm does when torchvision does not load
against torch (imported by tests/backbones/test_timm_backbone.py only)."""

raise RuntimeError("operator torchvision::nms does not exist")

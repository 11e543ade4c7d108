"""fastmeta: fast, correct meta-learning for PyTorch."""

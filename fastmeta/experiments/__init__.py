"""End-to-end experiments behind ``fastmeta train``."""

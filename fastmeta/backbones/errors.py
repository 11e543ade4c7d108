"""The errors of building a backbone: each message is one line that says what to change."""

from __future__ import annotations


class BackboneError(ValueError):
    """A backbone setting that cannot be honoured (a weights file that does not fit, a freeze
    prefix that names no block, weights that cannot be fetched)."""


class MissingExtra(RuntimeError):
    """An optional package a backbone needs is not installed (or does not import)."""

    exit_code = 2  # the user's to fix: install it

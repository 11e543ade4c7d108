"""Errors raised by the dataset loaders; every message says what to change to fix it."""

from __future__ import annotations


class DatasetError(Exception):
    """A dataset cannot be loaded as asked. The message names the file and the fix."""


class MissingDataError(DatasetError, FileNotFoundError):
    """A file or folder the loader needs is absent (the message says what to put where)."""


class CorruptDataError(DatasetError, ValueError):
    """A file is present but damaged, truncated, of the wrong kind, or holds the wrong images."""


class SplitError(DatasetError, ValueError):
    """A split list (or split request) does not match the data: absent classes, unknown split."""


class DownloadError(DatasetError, OSError):
    """A file could not be fetched or failed verification after download."""

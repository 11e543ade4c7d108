"""File checksums and the ``SHA256SUMS`` manifest that may sit beside a dataset's files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from .errors import CorruptDataError

MANIFEST = "SHA256SUMS"


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` from ``root/SHA256SUMS`` (``sha256sum`` format), or ``{}``."""
    path = root / MANIFEST
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2:
            name = parts[1].lstrip("*")
            sums[name.removeprefix("./")] = parts[0].lower()
    return sums


def verify_manifest(root: Path, files: Iterable[Path], fix: str) -> None:
    """Check each of ``files`` listed in ``root/SHA256SUMS`` against its recorded sha256.

    Files the manifest does not list are not checked. ``fix`` ends the error message (e.g. the
    download command) so the user knows how to replace a damaged file.
    """
    sums = read_manifest(root)
    for path in files:
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            continue
        expected = sums.get(rel)
        if expected is None or not path.is_file():
            continue
        actual = file_digest(path)
        if actual != expected:
            raise CorruptDataError(
                f"{path} does not match its checksum in {root / MANIFEST} "
                f"(sha256 {actual}, expected {expected}): the file is damaged, truncated or "
                f"was replaced. Restore the original file. {fix}"
            )

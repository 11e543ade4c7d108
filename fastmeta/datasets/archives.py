"""Read files straight out of zip/tar archives or folders, and extract archives safely.

Loaders read archives in place (no extraction needed, the data root may be read-only). A damaged
archive gives an error that says what the file really is (empty, an HTML page, truncated) and how
to replace it. :func:`extract_archive` refuses members that would land outside the target folder.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO

from .errors import CorruptDataError

_READ_ERRORS = (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError)


def is_archive(path: Path) -> bool:
    """Whether ``path`` names a zip or tar archive (by its extension)."""
    name = path.name.lower()
    return name.endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"))


def describe_bad_file(path: Path) -> str:
    """A short guess at what a file that failed to parse really is."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(512).lstrip().lower()
    except OSError as error:
        return f"it cannot be read ({error})"
    if size == 0:
        return "it is empty"
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in head:
        return "it is an HTML page, not data (a failed download saved under the file's name?)"
    return f"it is truncated or damaged ({size:,} bytes)"


def corrupt_archive(path: Path, error: BaseException, fix: str) -> CorruptDataError:
    """The error to raise when archive ``path`` cannot be read."""
    return CorruptDataError(
        f"{path} cannot be read as an archive: {describe_bad_file(path)} "
        f"[{type(error).__name__}: {error}]. Delete it. {fix}"
    )


def read_members(
    source: Path, select: Callable[[str], bool], fix: str
) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of each file in a zip, tar or folder whose posix name passes ``select``.

    Names are relative to the archive (or folder) root, e.g. ``images_background/Latin/...``.
    Zip and folder members come sorted by name, tar members in archive order (read in one pass).
    ``fix`` ends the error message for a damaged archive ("Run `fastmeta data ...`.").
    """
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            name = path.relative_to(source).as_posix()
            if select(name):
                yield name, path.read_bytes()
        return
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                for name in sorted(archive.namelist()):
                    if not name.endswith("/") and select(name):
                        yield name, archive.read(name)
            return
        with tarfile.open(source) as archive:
            for member in archive:
                if member.isfile() and select(member.name):
                    handle = archive.extractfile(member)
                    if handle is not None:
                        yield member.name, handle.read()
    except _READ_ERRORS as error:
        raise corrupt_archive(source, error, fix) from error


def list_members(source: Path, fix: str) -> list[str]:
    """Names of the files in a zip, tar or folder (sorted), without reading their contents."""
    if source.is_dir():
        return sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                return sorted(n for n in archive.namelist() if not n.endswith("/"))
        with tarfile.open(source) as archive:
            return sorted(m.name for m in archive.getmembers() if m.isfile())
    except _READ_ERRORS as error:
        raise corrupt_archive(source, error, fix) from error


def safe_member_path(dest: Path, name: str) -> Path:
    """Where member ``name`` goes under ``dest``; raises if it would land outside ``dest``."""
    unified = name.replace("\\", "/")
    parts = PurePosixPath(unified).parts
    if unified.startswith("/") or (parts and parts[0].endswith(":")) or ".." in parts:
        raise CorruptDataError(
            f"refusing to extract {name!r}: the path leaves the target folder {dest}. The "
            "archive is malformed or malicious; get it again from the official source."
        )
    target = dest.joinpath(*[p for p in parts if p not in ("", ".")])
    if not target.resolve().is_relative_to(dest.resolve()):
        raise CorruptDataError(
            f"refusing to extract {name!r}: it resolves to {target.resolve()}, outside {dest}."
        )
    return target


def extract_archive(archive: Path, dest: Path) -> list[Path]:
    """Extract a zip or tar archive into ``dest`` and return the files written.

    Every member is checked first: absolute paths, ``..`` components, links and special files
    are refused (nothing is written in that case), so no member can escape ``dest``.
    """
    fix = "Download it again."
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                entries = [
                    _Member(
                        info.filename, info.is_dir(), _is_zip_link(info), partial(zf.open, info)
                    )
                    for info in zf.infolist()
                ]
                return _write_members(entries, dest)
        with tarfile.open(archive) as tf:
            entries = [
                _Member(m.name, m.isdir(), not (m.isfile() or m.isdir()), partial(_tar_file, tf, m))
                for m in tf.getmembers()
            ]
            return _write_members(entries, dest)
    except _READ_ERRORS as error:
        raise corrupt_archive(archive, error, fix) from error


@dataclass(frozen=True)
class _Member:
    """One archive member: its name, whether it is a folder or a link (or other special file),
    and how to open its contents."""

    name: str
    is_dir: bool
    is_link: bool
    open: Callable[[], IO[bytes]]


def _is_zip_link(info: zipfile.ZipInfo) -> bool:
    return (info.external_attr >> 16) & 0o170000 == 0o120000


def _tar_file(archive: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    contents = archive.extractfile(member)
    assert contents is not None  # regular file members always have contents
    return contents


def _write_members(members: list[_Member], dest: Path) -> list[Path]:
    """Check every member (nothing is written if one is refused), then write them."""
    targets = [safe_member_path(dest, m.name) for m in members]
    for member in members:
        if member.is_link:
            raise _refuse_link(member.name, dest)
    written = []
    for member, target in zip(members, targets, strict=True):
        if member.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with member.open() as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
        written.append(target)
    return written


def _refuse_link(name: str, dest: Path) -> CorruptDataError:
    return CorruptDataError(
        f"refusing to extract {name!r} into {dest}: links and special files are not allowed in "
        "dataset archives (they can point outside the target folder)."
    )

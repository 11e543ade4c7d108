"""Verified, resumable downloads of dataset files, and the message for an offline machine.

A :class:`Resource` is one file a dataset needs: where it goes under the dataset root, the URLs it
can be fetched from (the official one first) and the checksum it must have. Bytes arrive in
``<file>.part`` and resume from there with an HTTP ``Range`` request after an interruption; the
file gets its final name only once its size and checksum match.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .archives import describe_bad_file
from .errors import DownloadError, MissingDataError
from .integrity import MANIFEST, file_digest, read_manifest

_BLOCK = 1 << 16
_TRANSIENT = (http.client.IncompleteRead, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class Resource:
    """One file of a dataset.

    Args:
        path: where it goes, relative to the dataset root (e.g. ``"splits/vinyals/train.txt"``).
        urls: where to fetch it, the official source first; empty when there is no public URL.
        sha256: its sha256, when published (preferred check).
        md5: its md5, for files whose publisher gives only an md5 (e.g. Omniglot).
        size: its size in bytes, when known.
        source: who publishes it, shown to the user.
    """

    path: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    source: str = ""

    @property
    def checksum(self) -> tuple[str, str] | None:
        """``(algorithm, hex digest)`` to verify against, sha256 before md5."""
        if self.sha256:
            return "sha256", self.sha256
        if self.md5:
            return "md5", self.md5
        return None


def split_list_resources(
    path: str, url: str, digests: dict[str, str], source: str
) -> dict[str, Resource]:
    """One :class:`Resource` per split for published split lists.

    ``path`` and ``url`` contain ``{split}``; ``digests`` maps each split to its sha256.
    """
    return {
        split: Resource(
            path.format(split=split), urls=(url.format(split=split),), sha256=d, source=source
        )
        for split, d in digests.items()
    }


def check_file(resource: Resource, root: Path) -> str | None:
    """None if ``root/resource.path`` is valid, else why not (missing, wrong size or checksum).

    A ``SHA256SUMS`` file in ``root`` that lists the file takes precedence over the published
    checksum (it describes this local copy, which may be a faithful rebuild of the original).
    """
    path = root / resource.path
    if not path.is_file():
        return "missing"
    local = read_manifest(root).get(resource.path)
    if local is not None:
        actual = file_digest(path)
        return None if actual == local else f"sha256 {actual} differs from {MANIFEST} ({local})"
    if resource.size is not None and path.stat().st_size != resource.size:
        return f"size {path.stat().st_size:,} bytes, expected {resource.size:,}"
    if resource.checksum is not None:
        algorithm, expected = resource.checksum
        actual = file_digest(path, algorithm)
        if actual != expected:
            return f"{algorithm} {actual}, expected {expected}"
    return None


def fetch(resource: Resource, root: Path, progress: bool = True) -> Path:
    """Make sure ``root/resource.path`` exists and is valid, downloading it if it is absent.

    A present file that fails verification is left alone and reported (it may be the user's).
    """
    dest = root / resource.path
    if dest.exists():
        problem = check_file(resource, root)
        if problem is None:
            return dest
        raise DownloadError(
            f"{dest} exists but does not match the expected file ({problem}); "
            f"{describe_bad_file(dest)}. Delete it and run the download again."
        )
    if not resource.urls:
        raise MissingDataError(manual_message([resource], root))
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        probe = dest.parent / f".fastmeta-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise DownloadError(
            f"cannot write to {dest.parent} ({error}): the data folder is read-only. Pass "
            "--root DIR (or root=...) with a writable folder, or set FASTMETA_DATA."
        ) from error
    failures = []
    for url in resource.urls:
        try:
            download_url(url, dest, resource, progress=progress)
            return dest
        except DownloadError as error:
            failures.append(f"{url}: {error}")
    raise DownloadError(
        f"could not download {resource.path}:\n  "
        + "\n  ".join(failures)
        + "\n"
        + manual_message([resource], root)
    )


def download_url(
    url: str, dest: Path, resource: Resource, progress: bool = True, attempts: int = 4
) -> None:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming after interruptions, then verify."""
    part = dest.with_name(dest.name + ".part")
    for attempt in range(attempts):
        try:
            _transfer(url, part, progress)
            break
        except _TRANSIENT as error:
            if attempt == attempts - 1:
                raise DownloadError(
                    f"connection kept failing ({error}); run the command again to resume from "
                    f"the {part.stat().st_size if part.exists() else 0:,} bytes in {part}"
                ) from error
        except urllib.error.HTTPError as error:
            raise DownloadError(f"HTTP {error.code} {error.reason}") from error
        except urllib.error.URLError as error:
            raise DownloadError(
                f"no connection ({error.reason}); is this machine offline?"
            ) from error
    _verify_part(part, resource)
    os.replace(part, dest)


def _transfer(url: str, part: Path, progress: bool) -> None:
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "fastmeta"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # nothing left to send: the part file is complete
            return
        raise
    with response:
        resumed = response.status == 206 and _range_start(response) == start
        if not resumed:
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        with (
            open(part, "ab" if resumed else "wb") as out,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                desc=part.name.removesuffix(".part"),
                disable=None if progress else True,
            ) as bar,
        ):
            while block := response.read(_BLOCK):
                out.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise http.client.IncompleteRead(b"", total - part.stat().st_size)


def _range_start(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Range", "")  # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _verify_part(part: Path, resource: Resource) -> None:
    what = describe_bad_file(part)
    if "HTML" in what:
        part.unlink()
        raise DownloadError(f"the server sent an HTML page instead of {resource.path}")
    size = part.stat().st_size
    if resource.size is not None and size != resource.size:
        part.unlink()
        raise DownloadError(f"got {size:,} bytes, expected {resource.size:,}; removed the download")
    if resource.checksum is not None:
        algorithm, expected = resource.checksum
        actual = file_digest(part, algorithm)
        if actual != expected:
            part.unlink()
            raise DownloadError(
                f"checksum mismatch ({algorithm} {actual}, expected {expected}); removed the "
                "download. The server may have changed the file: check the source."
            )


def manual_message(missing: Sequence[Resource], root: Path) -> str:
    """Which file to place where, for a machine that cannot download (or a file with no URL)."""
    lines = [f"Place these files in {root}:"]
    for resource in missing:
        line = f"  {resource.path}"
        if resource.urls:
            line += f"  from {resource.urls[0]}"
        if resource.checksum is not None:
            algorithm, digest = resource.checksum
            line += f"  ({algorithm} {digest})"
        if resource.source:
            line += f"\n      source: {resource.source}"
        lines.append(line)
    return "\n".join(lines)


def ensure(
    resources: Sequence[Resource], root: Path, dataset: str, download: bool, progress: bool = True
) -> None:
    """Check that every resource is present under ``root``; fetch the missing ones if ``download``.

    Without ``download`` a missing file raises :class:`MissingDataError` naming each file, where
    to put it, and the ``fastmeta data download`` command that fetches it.
    """
    missing = [r for r in resources if not (root / r.path).exists()]
    if not missing:
        return
    if download:
        for resource in missing:
            fetch(resource, root, progress=progress)
        return
    hint = ""
    if all(r.urls for r in missing):
        hint = (
            f"\nOr download them: fastmeta data download {dataset} --root {root}"
            " (or pass download=True)."
        )
    raise MissingDataError(
        f"{dataset}: {len(missing)} required file(s) missing in {root}.\n"
        + manual_message(missing, root)
        + hint
    )

"""Downloads against a local HTTP server on 127.0.0.1: verification, resume, and failures."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from fastmeta.datasets import DownloadError, MissingDataError, Resource, fetch
from fastmeta.datasets.download import check_file, ensure

from .conftest import Served

PAYLOAD = bytes(range(256)) * 400  # 100 KiB


def resource(
    served: Served, name: str = "data.bin", body: bytes = PAYLOAD, **kw: object
) -> Resource:
    served.files[f"/{name}"] = body
    args = {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)} | kw
    return Resource(name, urls=(f"{served.url}/{name}",), **args)  # type: ignore[arg-type]


def test_download_verifies_and_renames(tmp_path: Path, http_server: Served) -> None:
    path = fetch(resource(http_server), tmp_path, progress=False)
    assert path == tmp_path / "data.bin" and path.read_bytes() == PAYLOAD
    assert not list(tmp_path.glob("*.part"))
    assert "Range" not in http_server.requests[0]


def test_md5_only_resource(tmp_path: Path, http_server: Served) -> None:
    res = resource(http_server, sha256=None, md5=hashlib.md5(PAYLOAD).hexdigest())
    assert fetch(res, tmp_path, progress=False).read_bytes() == PAYLOAD


def test_resumes_from_a_part_file(tmp_path: Path, http_server: Served) -> None:
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:40_000])
    path = fetch(resource(http_server), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert http_server.requests[0]["Range"] == "bytes=40000-"


def test_interrupted_transfer_resumes_with_range(tmp_path: Path, http_server: Served) -> None:
    http_server.cut_first_after = 30_000  # the first response stops early
    path = fetch(resource(http_server), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert [r.get("Range") for r in http_server.requests] == [None, "bytes=30000-"]


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path, http_server: Served) -> None:
    http_server.ignore_range = True
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:50_000])
    assert fetch(resource(http_server), tmp_path, progress=False).read_bytes() == PAYLOAD


def test_complete_part_file_is_accepted(tmp_path: Path, http_server: Served) -> None:
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)  # server answers 416
    assert fetch(resource(http_server), tmp_path, progress=False).read_bytes() == PAYLOAD


def test_checksum_mismatch_removes_the_download(tmp_path: Path, http_server: Served) -> None:
    res = resource(http_server, sha256="0" * 64)
    with pytest.raises(DownloadError, match="checksum mismatch") as error:
        fetch(res, tmp_path, progress=False)
    assert "Place these files in" in str(error.value) and "data.bin" in str(error.value)
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "data.bin.part").exists()


def test_html_page_is_rejected(tmp_path: Path, http_server: Served) -> None:
    page = b"<!DOCTYPE html><html><title>Google Drive - Virus scan warning</title></html>"
    res = resource(http_server, body=page, sha256=None, size=None)
    with pytest.raises(DownloadError, match=r"HTML page instead of data\.bin"):
        fetch(res, tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


def test_falls_back_to_the_next_url(tmp_path: Path, http_server: Served) -> None:
    res = resource(http_server)
    res = Resource(res.path, (f"{http_server.url}/gone.bin", *res.urls), res.sha256, size=res.size)
    assert fetch(res, tmp_path, progress=False).read_bytes() == PAYLOAD
    assert [r["path"] for r in http_server.requests] == ["/gone.bin", "/data.bin"]


def test_offline_machine_gets_told_what_to_place_where(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    res = Resource(
        "images_background.zip",
        urls=(f"http://127.0.0.1:{port}/images_background.zip",),
        md5="68d2efa1b9178cc56df9314c21c6e718",
    )
    with pytest.raises(DownloadError) as error:
        fetch(res, tmp_path / "omniglot", progress=False)
    message = str(error.value)
    assert "offline" in message
    assert f"Place these files in {tmp_path / 'omniglot'}" in message
    assert "images_background.zip  from http://127.0.0.1" in message
    assert "md5 68d2efa1b9178cc56df9314c21c6e718" in message


def test_unwritable_root(tmp_path: Path, http_server: Served) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(DownloadError, match="cannot write to") as error:
        fetch(resource(http_server), blocker / "sub", progress=False)
    assert "--root" in str(error.value) and not http_server.requests


def test_existing_bad_file_is_left_alone(tmp_path: Path, http_server: Served) -> None:
    (tmp_path / "data.bin").write_bytes(b"something else")
    with pytest.raises(DownloadError, match="exists but does not match") as error:
        fetch(resource(http_server), tmp_path, progress=False)
    assert "Delete it" in str(error.value)
    assert (tmp_path / "data.bin").read_bytes() == b"something else"
    assert not http_server.requests


def test_local_manifest_takes_precedence_over_published_checksum(tmp_path: Path) -> None:
    """A faithful rebuild (different bytes, listed in SHA256SUMS) is accepted, not re-fetched."""
    rebuilt = b"rebuilt zip with the same images"
    (tmp_path / "images.zip").write_bytes(rebuilt)
    (tmp_path / "SHA256SUMS").write_text(f"{hashlib.sha256(rebuilt).hexdigest()}  ./images.zip\n")
    res = Resource("images.zip", urls=("http://127.0.0.1:9/never",), md5="0" * 32, size=999)
    assert check_file(res, tmp_path) is None
    assert fetch(res, tmp_path, progress=False) == tmp_path / "images.zip"
    (tmp_path / "SHA256SUMS").write_text(f"{'1' * 64}  images.zip\n")
    assert "differs from SHA256SUMS" in (check_file(res, tmp_path) or "")


def test_ensure_without_download_names_files_and_command(tmp_path: Path) -> None:
    res = Resource("splits/train.csv", urls=("https://example.org/train.csv",), sha256="ab" * 32)
    manual = Resource("train_images_png.pkl", source="no stable public URL")
    with pytest.raises(MissingDataError) as error:
        ensure([res], tmp_path, "demo", download=False)
    assert "fastmeta data download demo --root" in str(error.value)
    assert "splits/train.csv  from https://example.org/train.csv" in str(error.value)
    with pytest.raises(MissingDataError) as error:
        ensure([manual], tmp_path, "demo", download=True)
    assert "train_images_png.pkl" in str(error.value)
    assert "no stable public URL" in str(error.value)

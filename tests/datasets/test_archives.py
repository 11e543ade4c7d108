"""Archive extraction refuses members that would land outside the target folder."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from fastmeta.datasets import CorruptDataError, extract_archive
from fastmeta.datasets.archives import read_members


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for info in members:
            if info.isfile():
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return path


def test_extracts_a_normal_zip_and_tar(tmp_path: Path) -> None:
    zipped = make_zip(tmp_path / "a.zip", {"top/a.txt": b"A", "top/sub/b.txt": b"B"})
    written = extract_archive(zipped, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
        "top/a.txt",
        "top/sub/b.txt",
    ]
    assert (tmp_path / "out/top/sub/b.txt").read_bytes() == b"B"
    tarred = make_tar(tmp_path / "a.tar.gz", [tarfile.TarInfo("d/c.txt")])
    extract_archive(tarred, tmp_path / "out2")
    assert (tmp_path / "out2/d/c.txt").read_bytes() == b"x"


@pytest.mark.parametrize(
    "name", ["../evil.txt", "top/../../evil.txt", "/tmp/evil.txt", "..\\evil.txt", "C:/evil.txt"]
)
def test_zip_members_escaping_the_target_are_refused(tmp_path: Path, name: str) -> None:
    archive = make_zip(tmp_path / "bad.zip", {"ok.txt": b"fine", name: b"evil"})
    dest = tmp_path / "deep" / "out"
    with pytest.raises(CorruptDataError, match="refusing to extract") as error:
        extract_archive(archive, dest)
    assert "official source" in str(error.value)
    assert not list(dest.iterdir())  # checked before anything is written
    assert not list(tmp_path.rglob("evil.txt"))


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_tar_members_escaping_the_target_are_refused(tmp_path: Path, name: str) -> None:
    archive = make_tar(tmp_path / "bad.tgz", [tarfile.TarInfo("ok.txt"), tarfile.TarInfo(name)])
    dest = tmp_path / "out"
    with pytest.raises(CorruptDataError, match="leaves the target folder"):
        extract_archive(archive, dest)
    assert not list(dest.iterdir())


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
def test_tar_links_and_devices_are_refused(tmp_path: Path, kind: bytes) -> None:
    link = tarfile.TarInfo("innocent")
    link.type = kind
    link.linkname = "/etc/passwd"
    archive = make_tar(tmp_path / "links.tar.gz", [link, tarfile.TarInfo("innocent/payload")])
    with pytest.raises(CorruptDataError, match="links and special files are not allowed"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "innocent").exists()


def test_zip_symlink_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(CorruptDataError, match="links"):
        extract_archive(path, tmp_path / "out")


def test_damaged_archive_says_what_it_is(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tar.gz"
    empty.write_bytes(b"")
    with pytest.raises(CorruptDataError, match="it is empty"):
        extract_archive(empty, tmp_path / "out")
    good = make_tar(tmp_path / "good.tar.gz", [tarfile.TarInfo(f"f{i}") for i in range(50)])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CorruptDataError, match="truncated or damaged") as error:
        list(read_members(cut, lambda name: True, "Run the download again."))
    assert str(cut) in str(error.value) and "Run the download again." in str(error.value)

"""Part ``setup`` of ``benchmarks.gpu``: install the carried peers without a package index.

Wheels (``*.whl``) in ``--peers`` go in with one ``pip install --no-index --no-deps --target``;
if that fails (one wheel not for this Python, say), each is tried alone so the others still
land. Then each source tree (a folder with ``setup.py`` or ``pyproject.toml``, learn2learn's
with its regenerated C files) is built and installed on its own, without build isolation.
Exits 1 when anything failed; the log says what.

    python -m benchmarks.gpu_setup --peers .gpu-carry/peers --target /tmp/site
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def peer_packages(folder: Path) -> tuple[list[Path], list[Path]]:
    """``(wheels, source trees)`` in ``folder`` (empty lists when it does not exist)."""
    if not folder.is_dir():
        return [], []
    entries = sorted(folder.iterdir())
    wheels = [p for p in entries if p.suffix == ".whl" and p.is_file()]
    trees = [
        p
        for p in entries
        if p.is_dir() and any((p / name).exists() for name in ("setup.py", "pyproject.toml"))
    ]
    return wheels, trees


def pip_install(packages: list[Path], target: Path, env: dict[str, str] | None = None) -> bool:
    """Install ``packages`` into ``target`` with no index and no dependencies; True if it did."""
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps",
               "--no-build-isolation", "--disable-pip-version-check", "--upgrade",
               "--target", str(target), *map(str, packages)]  # fmt: skip
    return subprocess.run(command, env=env).returncode == 0


def install(folder: Path, target: Path) -> list[str]:
    """Install every peer package in ``folder``; the names of those that failed.

    Source trees are built from a copy, so the carried folder gets no build files, and at
    ``-O0``: learn2learn's C modules are its data utilities, which no timed row uses (its MAML is
    Python), and on a loaded 2-core CPU they built in 12 s so against 40 s at the default."""
    wheels, trees = peer_packages(folder)
    failed = []
    if wheels and not pip_install(wheels, target):
        print("installing the wheels together failed; one at a time:", flush=True)
        failed += [w.name for w in wheels if not pip_install([w], target)]
    with tempfile.TemporaryDirectory(prefix="fastmeta-peer-build-") as scratch:
        for tree in trees:
            print(f"building {tree.name} ...", flush=True)
            copy = Path(shutil.copytree(tree, Path(scratch) / tree.name))
            if not pip_install([copy], target, dict(os.environ, CFLAGS="-O0")):
                failed.append(tree.name)
    return failed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=Path, required=True, help="the carried packages")
    parser.add_argument("--target", type=Path, required=True, help="install into this folder")
    args = parser.parse_args(argv)
    failed = install(args.peers, args.target)
    wheels, trees = peer_packages(args.peers)
    print(f"installed {len(wheels) + len(trees) - len(failed)} of {len(wheels) + len(trees)}")
    if failed:
        sys.exit(f"not installed: {', '.join(failed)}")


if __name__ == "__main__":
    main()

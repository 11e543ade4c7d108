"""Fill ``.gpu-carry/`` (git-ignored) with what ``benchmarks.gpu`` reads on the GPU machine.

The device tool sends the repository and the ignored folders named in its ``carry`` only, not
``$FASTMETA_DATA``; this copies real Omniglot's two zips, the Vinyals split lists and the
checksums there (about 14 MB), and lists the peers' packages found in ``.gpu-carry/peers``.

    python -m benchmarks.gpu_carry --data ../shared/data
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FILES = (
    "images_background.zip",
    "images_evaluation.zip",
    "SHA256SUMS",
    "splits/vinyals/train.txt",
    "splits/vinyals/val.txt",
    "splits/vinyals/test.txt",
)
LIMIT_MB = 64.0
"""What the device tool sends at most: the working tree and the carried folders together."""


def size_mb(folder: Path) -> float:
    """Megabytes of the files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def copy_omniglot(data: Path, carry: Path) -> list[Path]:
    """Copy :data:`FILES` from ``data/omniglot`` to ``carry/omniglot``; the copied paths.

    Raises ``FileNotFoundError`` naming the first missing file.
    """
    source = data / "omniglot"
    missing = [name for name in FILES if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{source / missing[0]} does not exist")
    copied = []
    for name in FILES:
        target = carry / "omniglot" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target)
        copied.append(target)
    return copied


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="folder holding omniglot/ ($FASTMETA_DATA)")
    parser.add_argument("--to", type=Path, default=REPO / ".gpu-carry", help="the carry folder")
    args = parser.parse_args(argv)
    from_env = os.environ.get("FASTMETA_DATA")
    data = args.data or (Path(from_env) if from_env else None)
    if data is None:
        parser.error("give --data (the folder holding omniglot/) or set $FASTMETA_DATA")
    try:
        copied = copy_omniglot(data, args.to)
    except FileNotFoundError as error:
        parser.error(f"{error}: copy the real Omniglot files first (fastmeta data download)")
    print(f"copied {len(copied)} files to {args.to / 'omniglot'}")
    peers = args.to / "peers"
    found = sorted(p.name for p in peers.iterdir()) if peers.is_dir() else []
    print(f"peers in {peers}: {', '.join(found) or 'none (their rows will say not installed)'}")
    total = size_mb(args.to)
    print(f"{args.to}: {total:.1f} MB (the device tool sends at most {LIMIT_MB:.0f} MB in all)")
    if total > LIMIT_MB:
        sys.exit(f"{args.to} is larger than the {LIMIT_MB:.0f} MB the device tool sends")


if __name__ == "__main__":
    main()

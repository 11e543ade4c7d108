"""``fastmeta data ...``: download, inspect, verify and prepare the benchmark datasets.

:func:`add_data_commands` registers the ``data`` command on the main parser's subparsers; each
sub-command stores its handler in ``handler`` (``args.handler(args)`` returns the exit status).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from .archives import extract_archive, is_archive
from .download import check_file, fetch, manual_message
from .errors import DatasetError
from .integrity import MANIFEST, file_digest, read_manifest
from .paths import SPLITS, cache_root, data_root
from .registry import DATASETS, dataset_info, load_splits

Handler = Callable[[argparse.Namespace], int]


def add_data_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``data download|info|verify|prepare NAME [--root DIR]`` to ``subparsers``."""
    data = subparsers.add_parser(
        "data", help="download, inspect, verify and prepare datasets", description=__doc__
    )
    commands = data.add_subparsers(dest="data_command", required=True)
    names = ", ".join(DATASETS)

    def add(name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=text, description=text)
        parser.add_argument("name", help=f"dataset: {names}")
        parser.add_argument(
            "--root", type=Path, default=None, help="dataset folder (default $FASTMETA_DATA/<name>)"
        )
        parser.set_defaults(handler=handler)
        return parser

    download = add("download", download_command, "fetch and verify a dataset's files")
    download.add_argument("--extract", action="store_true", help="also unpack the archives")
    add("info", info_command, "what a dataset needs, and what is present")
    add("verify", verify_command, "check the files' checksums")
    prepare = add("prepare", prepare_command, "decode and cache all splits, timing it")
    prepare.add_argument("--image-size", type=int, default=None, help="side in pixels")
    prepare.add_argument("--cache-dir", type=Path, default=None, help="default $FASTMETA_CACHE")
    return data


def _fail(error: DatasetError) -> int:
    print(f"fastmeta data: {error}", file=sys.stderr)
    return 1


def download_command(args: argparse.Namespace) -> int:
    """Fetch every downloadable file of ``args.name``; explain where to put the others."""
    try:
        info = dataset_info(args.name)
        root = data_root(info.name, args.root)
        if not info.files():
            raise DatasetError(f"{info.name} is your own data: there is nothing to download")
        manual = []
        for resource in info.files():
            if not resource.urls:
                manual.append(resource)
                continue
            path = fetch(resource, root)
            print(f"ok  {path}")
            if args.extract and is_archive(path):
                written = extract_archive(path, root)
                print(f"    extracted {len(written)} files into {root}")
    except DatasetError as error:
        return _fail(error)
    absent = [r for r in manual if not (root / r.path).exists()]
    if absent:
        print(
            f"\n{info.name}: these files have no public download; " + manual_message(absent, root)
        )
    return 0


def info_command(args: argparse.Namespace) -> int:
    """Describe ``args.name``: expected layout, which files are present, and the cache folder."""
    try:
        info = dataset_info(args.name)
    except DatasetError as error:
        return _fail(error)
    root = data_root(info.name, args.root)
    print(f"{info.name}: {info.title}")
    if info.image_size is None:
        print(f"  tasks    {info.layout}")
    else:
        size = info.image_size
        print(f"  images   {info.channels} x {size} x {size} uint8 (default)")
    settings = [f.name for f in fields(info.options)] if info.options is not None else []
    print(f"  settings {', '.join(f'data.{n}' for n in settings) or 'none of its own'}")
    if info.image_size is None:
        return 0
    print(f"  root     {root}{'' if root.exists() else '  (does not exist)'}")
    print(f"  expects  {info.layout}")
    for resource in info.files():
        state = "present" if (root / resource.path).exists() else "missing"
        where = resource.urls[0] if resource.urls else "no public URL"
        print(f"  {state:8} {resource.path}  [{where}]")
    print(f"  cache    {cache_root()}")
    return 0


def verify_command(args: argparse.Namespace) -> int:
    """Check every present file against SHA256SUMS beside it, else the published checksum."""
    try:
        info = dataset_info(args.name)
    except DatasetError as error:
        return _fail(error)
    root = data_root(info.name, args.root)
    bad = 0
    checked = set()
    for resource in info.files():
        if resource.path.endswith("/") or not (root / resource.path).is_file():
            continue
        problem = check_file(resource, root)
        checked.add(resource.path)
        bad += problem is not None
        print(f"{'ok' if problem is None else 'BAD':4} {resource.path}  {problem or ''}")
    for rel, expected in read_manifest(root).items():
        if rel in checked or not (root / rel).is_file():
            continue
        actual = file_digest(root / rel)
        bad += actual != expected
        print(f"{'ok' if actual == expected else 'BAD':4} {rel}  (from {MANIFEST})")
    if bad:
        print(f"{bad} file(s) failed: delete them and run `fastmeta data download {info.name}`.")
    return 1 if bad else 0


def prepare_command(args: argparse.Namespace) -> int:
    """Decode and cache every split of ``args.name`` and report counts and the time taken."""
    try:
        info = dataset_info(args.name)
        start = time.perf_counter()
        stores = load_splits(
            info.name, args.root, args.image_size, SPLITS, cache_dir=args.cache_dir
        )
    except DatasetError as error:
        return _fail(error)
    seconds = time.perf_counter() - start
    for split, store in stores.items():
        shape = "x".join(map(str, store.image_shape))
        print(f"{split:5} {store.num_classes:5} classes {len(store.images):7} images  {shape}")
    print(f"loaded in {seconds:.2f} s (cache: {cache_root(args.cache_dir)})")
    return 0

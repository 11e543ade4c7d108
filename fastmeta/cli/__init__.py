"""The ``fastmeta`` command line: train, eval, presets, algorithms, config, plot, reproduce,
data, adapt and export.

A mistake gets one line (or a short block) naming the key, file or value and the fix, and exit
status 2; a run that fails for another reason (it diverged, a disk filled up) gets one line and
status 1; an interrupted run says how to continue (status 130 or 143). ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from fastmeta.cli.parser import build_parser

# errors that are the user's to fix: exit status 2
_USAGE = (ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in e and e[0] != "-" for e in extra):
        args.overrides += extra  # key=value after an option, e.g. `train P --data X key=value`
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if os.environ.get("FASTMETA_KEEP_FREED_MEMORY", "1") != "0":
        from fastmeta.train.allocator import keep_freed_memory

        keep_freed_memory()  # fewer page faults on a CPU; see fastmeta.train.allocator
    return run_handler(args)


def run_handler(args: argparse.Namespace) -> int:
    """Run the sub-command's handler and turn its errors into the lines described above."""
    from fastmeta.datasets.errors import DatasetError
    from fastmeta.train.signals import Interrupted

    try:
        status: int = args.handler(args)
        return status
    except Interrupted as interrupted:  # saved; the message says how to continue
        print(f"fastmeta {args.command}: {interrupted}", file=sys.stderr)
        return interrupted.exit_code
    except BrokenPipeError:  # the reader of stdout went away (`fastmeta presets | head`)
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"fastmeta {args.command}: interrupted", file=sys.stderr)
        return 130
    except (*_USAGE, DatasetError, OSError, RuntimeError) as error:
        if args.debug:
            raise
        exit_code = getattr(error, "exit_code", None)
        print(f"fastmeta {args.command}: {one_line(error)}", file=sys.stderr)
        if isinstance(exit_code, int):
            return exit_code
        return 2 if _is_usage(error) else 1


def _is_usage(error: BaseException) -> bool:
    from fastmeta.run.checkpoint import CheckpointMismatchError

    return isinstance(error, (*_USAGE, CheckpointMismatchError))


def one_line(error: BaseException) -> str:
    """The error's message: for an ``OSError`` its reason and file, without the errno."""
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    if isinstance(error, OSError) and error.strerror:
        return error.strerror + (f": {error.filename}" if error.filename else "")
    return str(error)


if __name__ == "__main__":
    sys.exit(main())

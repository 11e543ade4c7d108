"""Unpickling that only rebuilds plain data (numpy arrays, lists, dicts), never runs code.

Benchmark pickles (CIFAR-100, mini-ImageNet, tiered-ImageNet) are often fetched from third-party
mirrors; an ordinary ``pickle.load`` would execute whatever such a file asks for.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, BinaryIO

from .archives import describe_bad_file
from .errors import CorruptDataError

_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
}


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not plain data)")
        if module.startswith("numpy.core"):  # pickles from numpy < 2 name the old module
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def text(value: Any) -> str:
    """A label name from a pickle as ``str`` (Python 2 pickles may give bytes)."""
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def entry(mapping: Any, key: str, source: str) -> Any:
    """``mapping[key]`` accepting a bytes key (Python 2 pickles), or a clear error."""
    if isinstance(mapping, dict):
        for candidate in (key, key.encode()):
            if candidate in mapping:
                return mapping[candidate]
        found = ", ".join(sorted(text(k) for k in mapping)) or "none"
        raise CorruptDataError(
            f"{source} has no {key!r} entry (its keys: {found}); it is not a file in the "
            "expected format. Replace it with the original file."
        )
    raise CorruptDataError(
        f"{source} holds a {type(mapping).__name__}, not the expected dict; replace it with "
        "the original file."
    )


def load_data_pickle(data: bytes | BinaryIO, source: str, encoding: str = "latin1") -> Any:
    """Unpickle ``data`` (bytes or an open binary file, named ``source``), plain data only.

    ``encoding`` is how Python 2 ``str`` objects are read ("latin1" gives str, "bytes" bytes).
    """
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        return _DataUnpickler(stream, encoding=encoding).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        path = Path(source)
        what = describe_bad_file(path) if path.is_file() else "it is truncated or damaged"
        raise CorruptDataError(
            f"{source} is not a readable data pickle: {what} [{type(error).__name__}: {error}]. "
            "Replace it with the original file."
        ) from error

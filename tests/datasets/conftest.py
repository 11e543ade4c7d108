"""Builders for tiny datasets in the real file formats, a local HTTP server, real-data roots."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from fastmeta.datasets.omniglot import load_omniglot, read_omniglot

SPLITS = ("train", "val", "test")


def shared_root(name: str) -> Path:
    """``$FASTMETA_DATA/<name>`` (real files), or skip when the variable is unset."""
    base = os.environ.get("FASTMETA_DATA")
    if not base:
        pytest.skip(
            "FASTMETA_DATA is not set; these tests read the real files (split lists, Omniglot) "
            "from $FASTMETA_DATA/<dataset>, e.g. FASTMETA_DATA=/work/shared/data"
        )
    return Path(base).expanduser().resolve() / name


def encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    """An image array encoded as ``fmt`` bytes."""
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format=fmt)
    return buffer.getvalue()


def glyph(seed: int, size: int = 105) -> bytes:
    """A 1-bit PNG like Omniglot's: white background, a black stroke that depends on ``seed``."""
    image = Image.new("1", (size, size), 1)
    rng = np.random.default_rng(seed)
    x, y = rng.integers(10, size - 30, 2)
    for i in range(20):
        image.putpixel((int(x) + i, int(y) + i // 2), 0)
        image.putpixel((int(x) + i, int(y) + i // 2 + 1), 0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def colour(seed: int, size: int = 84, channels: int = 3) -> np.ndarray:
    """A uint8 image whose pixel values encode ``seed`` (so label mix-ups show)."""
    rng = np.random.default_rng(seed)
    shape = (size, size, channels) if channels > 1 else (size, size)
    return rng.integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture(scope="session")
def real(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The real Omniglot decoded ONCE per test session into a fresh temporary cache.

    A fresh cache means every run tests the cold decode (whatever cache the machine has), and
    the timed second load shows the cache hit; all real-data tests share these results.
    """
    root = shared_root("omniglot")
    cache = tmp_path_factory.mktemp("omniglot-cache")
    start = time.perf_counter()
    data = read_omniglot(root, cache_dir=cache)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    again = read_omniglot(root, cache_dir=cache)
    warm = time.perf_counter() - start
    return SimpleNamespace(
        root=root,
        cache=cache,
        data=data,
        again=again,
        cold=cold,
        warm=warm,
        vinyals={s: load_omniglot(s, root, cache_dir=cache) for s in SPLITS},
        maml={s: load_omniglot(s, root, cache_dir=cache, scheme="maml") for s in SPLITS},
    )


@dataclass
class Served:
    """Files served over HTTP on 127.0.0.1, with knobs to misbehave, and a request log."""

    files: dict[str, bytes] = field(default_factory=dict)
    ignore_range: bool = False
    cut_first_after: int | None = None
    requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def http_server() -> Iterator[Served]:
    """A local HTTP server that honours Range requests (never the internet)."""
    served = Served()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            served.requests.append({"path": self.path, **dict(self.headers)})
            body = served.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            header = self.headers.get("Range")
            if header and not served.ignore_range:
                start = int(header.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            chunk = body[start:]
            if served.cut_first_after is not None:
                chunk = chunk[: served.cut_first_after]
                served.cut_first_after = None
            self.wfile.write(chunk)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield served
    server.shutdown()
    server.server_close()

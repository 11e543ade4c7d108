"""Capture and restore every global random number generator a training run draws from.

A resumed run continues exactly where it stopped only if Python's ``random``, NumPy's global
generator, torch's CPU generator and every CUDA device's generator are put back in the state they
had when the checkpoint was written. The captured state uses only types that
``torch.load(weights_only=True)`` accepts (tensors, dicts, lists, ints, floats, strings, None), so
it can be stored inside a checkpoint without allowing arbitrary unpickling. NumPy arrays are stored
as raw bytes in a uint8 tensor plus their dtype and shape, which round-trips any dtype exactly.

Explicit ``torch.Generator`` objects (for instance a sampler's) are not global and are not covered:
their owners save ``generator.get_state()`` themselves.
"""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np
import torch

RNG_STATE_VERSION = 1
_KEYS = ("version", "python", "numpy", "torch", "cuda")


def capture_rng_state() -> dict[str, Any]:
    """Return the current states of ``random``, NumPy's global RNG, torch CPU and all CUDA devices.

    ``cuda`` is a list with one state per visible device, or ``None`` when CUDA is unavailable.
    Drawing numbers after :func:`restore_rng_state` of this dict gives exactly the numbers that
    would have been drawn right after this call.
    """
    version, internal, gauss_next = random.getstate()
    cuda = (
        [s.clone() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else None
    )
    return {
        "version": RNG_STATE_VERSION,
        "python": {
            "version": int(version),
            # 624 uint32 words of the Mersenne Twister plus the position (<= 624): fit in int64.
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "numpy": _encode_numpy(np.random.get_state(legacy=False)),
        "torch": torch.get_rng_state().clone(),
        "cuda": cuda,
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put every global generator back in the state recorded by :func:`capture_rng_state`.

    Raises ``ValueError`` when ``state`` is not such a dict. CUDA states are restored when the
    same number of CUDA devices is visible; otherwise a ``RuntimeWarning`` says that GPU random
    draws will not continue the interrupted run (CPU and Python/NumPy streams are still restored).
    """
    missing = [k for k in _KEYS if k not in state]
    if missing:
        raise ValueError(
            f"not an RNG state from capture_rng_state(): missing keys {missing}; "
            "pass the dict that capture_rng_state() returned (e.g. checkpoint['rng'])"
        )
    if state["version"] != RNG_STATE_VERSION:
        raise ValueError(
            f"RNG state format version {state['version']} is not supported "
            f"(this fastmeta reads version {RNG_STATE_VERSION})"
        )
    py = state["python"]
    internal = tuple(int(x) for x in py["internal"].cpu().tolist())
    random.setstate((int(py["version"]), internal, py["gauss_next"]))
    np.random.set_state(_decode_numpy(state["numpy"]))
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    cuda = state["cuda"]
    if cuda is None:
        return
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available != len(cuda):
        warnings.warn(
            f"the saved RNG state covers {len(cuda)} CUDA device(s) but {available} are visible; "
            "CUDA random draws are not restored, so GPU-side randomness will not continue the "
            "saved run exactly (resume on the same machine for an exact continuation)",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    torch.cuda.set_rng_state_all([s.cpu().to(torch.uint8) for s in cuda])


def _encode_numpy(value: Any) -> Any:
    """Replace NumPy arrays (recursively inside dicts) by a weights_only-safe description."""
    if isinstance(value, np.ndarray):
        contiguous = np.ascontiguousarray(value)
        data = torch.from_numpy(np.frombuffer(contiguous.tobytes(), dtype=np.uint8).copy())
        return {"ndarray": data, "dtype": contiguous.dtype.str, "shape": list(contiguous.shape)}
    if isinstance(value, dict):
        return {k: _encode_numpy(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode_numpy(value: Any) -> Any:
    """Inverse of :func:`_encode_numpy`."""
    if isinstance(value, dict):
        if set(value) == {"ndarray", "dtype", "shape"}:
            raw = value["ndarray"].cpu().numpy().tobytes()
            return np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
        return {k: _decode_numpy(v) for k, v in value.items()}
    return value

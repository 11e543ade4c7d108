"""``model.name`` values: the built-in networks and ``timm:`` / ``hf:`` backbones (torch-free,
so a configuration is checked before torch loads)."""

from __future__ import annotations

from typing import Literal

BUILTIN = ("conv4", "resnet12", "mlp")
Library = Literal["timm", "hf"]
LIBRARIES: tuple[Library, ...] = ("timm", "hf")


def external(name: str) -> tuple[Library, str] | None:
    """``(library, what)`` for ``timm:<architecture>`` or ``hf:<id or path>``; ``None`` for a
    built-in network."""
    library, colon, what = name.partition(":")
    if not colon:
        return None
    for known in LIBRARIES:
        if library == known:
            return known, what
    return None


def check_model_name(name: str) -> None:
    """Refuse a ``model.name`` that is neither built in nor ``timm:`` / ``hf:`` followed by a
    name, with the choices."""
    if name in BUILTIN:
        return
    parsed = external(name)
    if parsed is not None and parsed[1].strip():
        return
    raise ValueError(
        f"model.name={name!r} is not valid; choose one of {', '.join(BUILTIN)}, "
        "timm:<architecture> (e.g. timm:resnet18) or hf:<model id or config.json path> "
        "(e.g. hf:facebook/dinov2-small)"
    )

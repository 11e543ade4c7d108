"""Presets: YAML run configurations that reproduce published settings."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastmeta.run_config import RunConfig, read_run_config


def preset_names() -> list[str]:
    """Names of the presets shipped with fastmeta."""
    folder = resources.files(__package__)
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    path = resources.files(__package__) / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no preset named {name!r}; presets: {', '.join(preset_names())}")
    return path.read_text()


def load_config(name_or_path: str) -> RunConfig:
    """A preset by name, or a YAML file by path (``.yaml``/``.yml``)."""
    if name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
        if not path.exists():
            raise ValueError(f"config file {path} does not exist")
        return read_run_config(path.read_text(), where=str(path))
    return read_run_config(preset_text(name_or_path), where=f"preset {name_or_path}")


@dataclass(frozen=True)
class PresetInfo:
    """What a preset says of itself: its description (the leading comment lines) and, from a
    ``# measured:`` line, how long it took on this project's machine."""

    description: str
    measured: str | None


def preset_info(name: str) -> PresetInfo:
    """The description and measured time of preset ``name``."""
    description, measured = [], None
    for line in preset_text(name).splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith("measured:"):
            measured = text.removeprefix("measured:").strip()
        else:
            description.append(text)
    return PresetInfo(" ".join(description) or name, measured)

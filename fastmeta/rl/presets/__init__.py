"""Meta-RL presets: YAML run configurations of published settings (``kind: rl``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastmeta.rl.config import RLConfig, read_rl_config


def preset_names() -> list[str]:
    """Names of the meta-RL presets shipped with fastmeta."""
    folder = resources.files(__package__)
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    path = resources.files(__package__) / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no meta-RL preset named {name!r}; presets: {', '.join(preset_names())}")
    return path.read_text()


def load_config(name_or_path: str) -> RLConfig:
    """A preset by name, or a YAML file by path (``.yaml``/``.yml``)."""
    if name_or_path.endswith((".yaml", ".yml")):
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(f"config file {path} does not exist")
        return read_rl_config(path.read_text(), where=str(path))
    return read_rl_config(preset_text(name_or_path), where=f"preset {name_or_path}")


def preset_summary(name: str) -> str:
    """The first comment line of a preset."""
    for line in preset_text(name).splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return name

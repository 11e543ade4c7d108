"""``fastmeta presets``, ``algorithms`` and ``config``: what there is, without torch."""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from typing import Any

import yaml

from fastmeta.config import describe, to_dict

COMMENT_COLUMN = 40


def presets(args: argparse.Namespace) -> int:
    """Every preset: its whole description, its length and its measured time here."""
    from fastmeta.presets import load_config, preset_info, preset_names

    for name in preset_names():
        info = preset_info(name)
        config = load_config(name)
        print(name)
        for line in textwrap.wrap(info.description, 92):
            print(f"    {line}")
        length = f"{config.train.iterations:,} meta-steps"
        if config.train.time_limit_minutes is not None:
            length += f" or {config.train.time_limit_minutes:g} minutes of training"
        print(f"    {length}; " + (f"measured: {info.measured}" if info.measured else "not timed"))
    return 0


def algorithms(args: argparse.Namespace) -> int:
    from fastmeta.algorithms.registry import algorithm_specs

    for name, spec in algorithm_specs().items():
        print(f"{name:<16} {spec.description}")
    return 0


def config(args: argparse.Namespace) -> int:
    """The resolved configuration of ``train PRESET key=value ...`` as commented YAML."""
    from fastmeta.presets import load_config
    from fastmeta.run.settings import apply_run_overrides, resolve_config

    resolved = resolve_config(apply_run_overrides(load_config(args.preset), args.overrides))
    print(f"# fastmeta train {args.preset} {' '.join(args.overrides)}".rstrip())
    print("\n".join(commented(resolved)))
    return 0


def commented(config: Any) -> list[str]:
    """YAML lines of ``config`` (a :class:`~fastmeta.run_config.RunConfig`), each key with its
    one-line description; the method's and the dataset's own settings in full, defaults too."""
    from fastmeta.algorithms.registry import algorithm_spec
    from fastmeta.datasets.registry import dataset_info

    values = to_dict(config)
    lines: list[str] = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if not dataclasses.is_dataclass(value):
            lines.append(_line(field.name, values[field.name], field.metadata.get("help", "")))
            continue
        lines.append(f"{field.name}:{'':<{COMMENT_COLUMN - len(field.name) - 1}}# "
                     f"{field.metadata.get('help', '')}")  # fmt: skip
        helps = describe(type(value))
        for key, item in values[field.name].items():
            if key in helps and key != "options":
                lines.append("  " + _line(key, item, helps[key]))
        if field.name == "algorithm":
            spec = algorithm_spec(config.algorithm.name)
            lines += _own_settings(field.name, spec.options, config.algorithm.options)
        elif field.name == "data":
            info = dataset_info(config.data.dataset)
            lines += _own_settings(field.name, info.options, config.data.options)
    return lines


def _own_settings(section: str, options: type | None, given: dict[str, Any]) -> list[str]:
    """The lines of a method's ``options`` (nested) or a dataset's own settings (flat)."""
    if options is None:
        return (
            ["  " + _line("options", {}, "it has none of its own")]
            if section == "algorithm"
            else []
        )
    defaults = to_dict(options())
    helps = describe(options)
    indent = "    " if section == "algorithm" else "  "
    header = f"{'  options:':<{COMMENT_COLUMN}}  # the method's own settings"
    lines = [header] if section == "algorithm" else []
    for key, default in defaults.items():
        value = given.get(key, default)
        lines.append(
            indent + _line(key, value, helps[key] + ("" if key in given else " (default)"))
        )
    return lines


def _line(key: str, value: Any, help: str) -> str:
    shown = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    text = f"{key}: {shown}"
    return f"{text:<{COMMENT_COLUMN - 2}}  # {help}" if help else text

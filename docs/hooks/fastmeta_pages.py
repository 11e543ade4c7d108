"""mkdocs hook: tables and presets read from fastmeta itself, so the pages cannot drift from it.

A page may hold these markers, each alone on a line; the build replaces them:

- ``<!-- fastmeta:options NAME -->``: the ``algorithm.*`` settings algorithm ``NAME`` reads and
  its own ``algorithm.options.*``, with defaults and descriptions, from its registry entry
  (``fastmeta.algorithms.registry``) and its options dataclass (``fastmeta.algorithms.options``).
- ``<!-- fastmeta:preset NAME -->``: the preset file ``fastmeta/presets/NAME.yaml`` as shipped.
- ``<!-- fastmeta:section NAME -->``: every key of one run-configuration section
  (``algorithm``, ``model``, ``data``, ``sampler``, ``optimizer``, ``train``, ``eval``) with its
  default and description, from ``fastmeta.run_config``.

An unknown name fails the build. The modules read here import no torch.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

MARKER = re.compile(r"^<!-- fastmeta:(options|preset|section) ([\w.-]+) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def replace(match: re.Match[str]) -> str:
        kind, name = match.groups()
        try:
            return {"options": options_table, "preset": preset_block, "section": section_table}[
                kind
            ](name)
        except (KeyError, ValueError) as error:
            raise ValueError(f"{page.file.src_uri}: {match.group(0)}: {error}") from None

    return MARKER.sub(replace, markdown)


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}"
    return str(value)


def _rows(prefix: str, cls: type, names: list[str] | None = None) -> list[str]:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    rows = []
    for name in names if names is not None else list(fields):
        field = fields[name]
        text = field.metadata.get("help", "").replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | `{_default(field)}` | {text} |")
    return rows


def options_table(name: str) -> str:
    from fastmeta.algorithms.registry import SHARED_SETTINGS, algorithm_spec
    from fastmeta.run_config import AlgorithmConfig

    spec = algorithm_spec(name)
    shared = [s for s in SHARED_SETTINGS if s in spec.settings]
    lines = ["| setting | default | what it does |", "|---|---|---|"]
    lines += _rows("algorithm.", AlgorithmConfig, [*shared, "strategy", "chunk_size"])
    if spec.options is not None:
        lines += _rows("algorithm.options.", spec.options)
    note = (
        f"`algorithm.name={name}` reads the settings above; the defaults are fastmeta's, a "
        "preset sets its own (below). "
    )
    if spec.options is None:
        note += f"`{name}` has no `algorithm.options`. "
    if spec.learned_inner_lr:
        note += "Its inner rates are meta-learned: `algorithm.inner_lr` sets their start. "
    return note.strip() + "\n\n" + "\n".join(lines) + "\n"


def preset_block(name: str) -> str:
    from fastmeta.presets import preset_text

    return f'```yaml title="fastmeta/presets/{name}.yaml"\n{preset_text(name).rstrip()}\n```\n'


def section_table(name: str) -> str:
    from fastmeta.run_config import RunConfig

    sections = {f.name: f for f in dataclasses.fields(RunConfig)}
    field = sections[name]
    if field.default_factory is dataclasses.MISSING:
        raise ValueError(f"{name} is not a section of the run configuration")
    cls = type(field.default_factory())  # the annotations are strings (postponed)
    if not dataclasses.is_dataclass(cls):
        raise ValueError(f"{name} is not a section of the run configuration")
    lines = ["| setting | default | what it does |", "|---|---|---|"]
    lines += _rows(f"{name}.", cls)
    return "\n".join(lines) + "\n"

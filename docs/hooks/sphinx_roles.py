"""griffe extension: fastmeta's docstrings use a few reStructuredText habits; render them.

The docstrings are Google style with reST inline markup (``:class:`~fastmeta.tasks.TaskBatch```,
``double backticks``, a ``::`` before an indented example). Markdown shows roles as raw text, so
this turns each role into a code span of its target (the last component after ``~``, as Sphinx
does) and a trailing ``::`` into ``:``; double-backtick spans are already Markdown code spans.
Nothing in fastmeta/ changes: the rewrite applies to the site's copy of each docstring.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc|const):`(~?)([^`]+)`")
LITERAL = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)
WRAPPED_NAMES = re.compile(r"^([ \t]+\w+(?:, \w+)*,)[ \t]*\n[ \t]+(?=\w+(?:, \w+)*:)", re.MULTILINE)


def rewrite(text: str) -> str:
    """``text`` with Sphinx roles as code spans and reST ``::`` markers as ``:``."""

    def role(match: re.Match[str]) -> str:
        short, target = match.groups()
        target = target.strip()
        if "<" in target and target.endswith(">"):  # :class:`title <target>`
            target = target.split("<", 1)[0].strip()
        elif short:
            target = target.rsplit(".", 1)[-1]
        return f"`{target}`"

    text = WRAPPED_NAMES.sub(lambda m: m.group(1) + " ", text)
    return LITERAL.sub(":", ROLE.sub(role, text))


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring once the object tree is complete."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)

"""Message templates with contact-attribute substitution: "Hello {first_name}".

Only bare attribute names are allowed inside braces: str.format's attribute access, indexing
and conversions would let a strategy author reach into Python objects, and a format spec
would make a missing attribute fail in surprising ways. "{{" and "}}" are literal braces.
"""
from __future__ import annotations

import re
import string
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FORMATTER = string.Formatter()


@lru_cache(maxsize=1024)
def _parts(template: str) -> tuple[tuple[str, str | None], ...]:
    """(literal text, placeholder name or None) pairs, parsed once per template (render runs
    per attempt); ValueError on a malformed template."""
    parts = []
    for literal, name, spec, conversion in _FORMATTER.parse(template):
        if name is not None:
            if not _NAME.match(name) or spec or conversion:
                shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
                raise ValueError(f"placeholder {{{shown}}} must be a bare attribute name like {{first_name}}")
        parts.append((literal, name))
    return tuple(parts)


def placeholders(template: str) -> set[str]:
    """The attribute names a template refers to."""
    return {name for _, name in _parts(template) if name is not None}


def render(template: str, contact: Mapping[str, Any]) -> str:
    """Substitute contact attributes; a missing attribute raises KeyError naming it, None renders empty."""
    if not template:
        return ""
    out: list[str] = []
    for literal, name in _parts(template):
        out.append(literal)
        if name is not None:
            if name not in contact:
                raise KeyError(name)
            value = contact[name]
            out.append("" if value is None else str(value))
    return "".join(out)

"""A contact's attributes changed at run time (an IVR or self-service application during a
call, through the web services of api/routers/contacts.py): a patch merged into what is
stored, bounded so that no caller can grow a contact row without limit.

A patch is a JSON merge patch of the top level (RFC 7396, one level): a key with a value sets
it, a key with `null` removes it, the keys not named stay. Bounds: at most `MAX_PATCH_KEYS`
keys per patch; a key 1..`MAX_KEY_CHARS` characters; a value nested at most `MAX_DEPTH`
levels; the merged attributes at most `MAX_KEYS` keys and `MAX_BYTES` bytes of JSON.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import json

MAX_PATCH_KEYS = 100
MAX_KEY_CHARS = 100
MAX_DEPTH = 4
MAX_KEYS = 200
MAX_BYTES = 64 * 1024


class AttributesRefused(ValueError):
    """A patch refused: `field` names what is at fault (`attributes.<key>`, or `attributes`)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def depth(value: Any) -> int:
    """How deeply `value` nests (a scalar: 0; `{}` or `[]`: 1), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Mapping):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            deepest = max(deepest, level)
            continue
        deepest = max(deepest, level + 1)
        if level + 1 > MAX_DEPTH:          # deep enough to refuse: stop walking
            return level + 1
        stack.extend((child, level + 1) for child in children)
    return deepest


def json_bytes(attributes: Mapping[str, Any]) -> int:
    """The size of `attributes` as stored (compact JSON, UTF-8)."""
    # json, not orjson: a row imported earlier may hold an integer beyond 64 bits
    return len(json.dumps(attributes, ensure_ascii=False, separators=(",", ":")).encode())


def check_whole(attributes: Mapping[str, Any]) -> None:
    """A contact's attributes as a contact row sends them (POST /lists/{id}/contacts): at
    most `MAX_KEYS` keys of 1..`MAX_KEY_CHARS` characters, values nested at most `MAX_DEPTH`
    levels, `MAX_BYTES` bytes of JSON; AttributesRefused naming the first fault."""
    if len(attributes) > MAX_KEYS:
        raise AttributesRefused("attributes", f"a contact holds at most {MAX_KEYS} attributes ({len(attributes)} sent)")
    for key, value in attributes.items():
        if not 1 <= len(key) <= MAX_KEY_CHARS:
            raise AttributesRefused("attributes", f"an attribute name has 1 to {MAX_KEY_CHARS} characters")
        if depth(value) > MAX_DEPTH:
            raise AttributesRefused(f"attributes.{key}", f"nested more than {MAX_DEPTH} levels deep")
    if (size := json_bytes(attributes)) > MAX_BYTES:
        raise AttributesRefused("attributes", f"a contact's attributes take at most {MAX_BYTES} bytes of JSON "
                                              f"({size} sent)")


def merge(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`current` with `patch` applied (see the module's docstring); AttributesRefused names
    the first key at fault, or `attributes` for a bound of the whole."""
    if not isinstance(patch, Mapping):
        raise AttributesRefused("attributes", "must be an object")
    if not patch:
        raise AttributesRefused("attributes", "names no attribute to set or remove")
    if len(patch) > MAX_PATCH_KEYS:
        raise AttributesRefused("attributes", f"at most {MAX_PATCH_KEYS} attributes per change ({len(patch)} sent)")
    out = dict(current)
    for key, value in patch.items():
        if not 1 <= len(key) <= MAX_KEY_CHARS:
            raise AttributesRefused("attributes", f"an attribute name has 1 to {MAX_KEY_CHARS} characters")
        if value is None:
            out.pop(key, None)
            continue
        if depth(value) > MAX_DEPTH:
            raise AttributesRefused(f"attributes.{key}", f"nested more than {MAX_DEPTH} levels deep")
        out[key] = value
    if len(out) > MAX_KEYS:
        raise AttributesRefused("attributes", f"a contact holds at most {MAX_KEYS} attributes ({len(out)} after this change)")
    if (size := json_bytes(out)) > MAX_BYTES:
        raise AttributesRefused("attributes", f"a contact's attributes take at most {MAX_BYTES} bytes of JSON "
                                              f"({size} after this change)")
    return out

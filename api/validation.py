"""Input PostgreSQL would refuse, refused at the gateway first: a 422 naming the field.

PostgreSQL stores no NUL character in text or JSONB, psycopg cannot encode an unpaired
surrogate (JSON lets a client send one as a `\\udxxx` escape), the ids are `integer`
columns, and JSONB takes no NaN or Infinity. A JSON integer no `bigint` holds is refused too:
no column or cast takes it, and the actors, which read JSONB with orjson, would get it back
as a float that has lost its precision. So:

* `Text` is a `str` without NUL or unpaired surrogates (every text field of a request model);
* `Id` is an id of an `integer` column (1 … 2³¹−1); `Ref` is an `Id` or a `Text` name;
* `json_fault` walks free-form JSON (strategy documents, contact rows, finish criteria,
  schedules) in linear time at any depth and gives the path of the first bad value;
  `CleanJson`, the same as a pydantic validator, raises `Fault`, whose path the error
  handler appends to the field's.
"""
from __future__ import annotations

import math
import re
from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

INT4_MAX = 2**31 - 1
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1

_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


class Fault(ValueError):
    """A bad value at `path` inside the value being validated."""

    def __init__(self, path: tuple[str | int, ...], message: str):
        super().__init__(message)
        self.path = path


def text_fault(text: str) -> str | None:
    """Why PostgreSQL would refuse `text`, or None."""
    found = _BAD_CHAR.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain a NUL character (\\u0000)"
    return f"must not contain an unpaired surrogate (\\u{ord(found.group()):04x})"


def printable(text: str) -> str:
    """`text` with NUL and surrogates written as `\\uXXXX`: safe to echo in an error."""
    return _BAD_CHAR.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def json_fault(value: Any) -> tuple[tuple[str | int, ...], str] | None:
    """(path, reason) of the first value PostgreSQL or orjson would refuse, in document order;
    None when all is well. Keys are checked as text; a bad key is named `printable`. Linear in
    the size of `value` at any depth (no recursion; each step links to its parent's path)."""
    stack: list[tuple[Any, Any]] = [(None, value)]        # (path as (parent, key) links, value)
    while stack:
        link, item = stack.pop()
        reason = None
        if isinstance(item, str):
            reason = text_fault(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not BIGINT_MIN <= item <= BIGINT_MAX:
                reason = f"must be between {BIGINT_MIN} and {BIGINT_MAX}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                reason = "must be a finite number"
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                if isinstance(key, str) and (key_reason := text_fault(key)) is not None:
                    return _unlink((link, printable(key))), f"key {key_reason}"
                children.append(((link, key), child))
            stack.extend(reversed(children))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed([((link, i), child) for i, child in enumerate(item)]))
        if reason is not None:
            return _unlink(link), reason
    return None


def _unlink(link: Any) -> tuple[str | int, ...]:
    path = []
    while link is not None:
        link, key = link
        path.append(key)
    return tuple(reversed(path))


def clean_text(value: str) -> str:
    if (reason := text_fault(value)) is not None:
        raise Fault((), reason)
    return value


def clean_json(value: Any) -> Any:
    if (fault := json_fault(value)) is not None:
        raise Fault(*fault)
    return value


Text = Annotated[str, AfterValidator(clean_text)]
# The bound of a resource's free-text `description` (lists, DNC lists, filter templates,
# campaigns, agent scripts): a 422 at the field beyond it.
MAX_DESCRIPTION = 1000


def bounded_text(max_length: int, min_length: int = 0) -> Any:
    """`Text` of `min_length`..`max_length` characters (the length checked first, so that its
    422 says "String should have at most N characters")."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length), AfterValidator(clean_text)]


Description = bounded_text(MAX_DESCRIPTION)
Id = Annotated[int, Ge(1), Le(INT4_MAX)]
CleanJson = BeforeValidator(clean_json)


def clean_ref(value: int | str) -> int | str:
    """A reference by id or by name: an `Id` or a `Text`."""
    if isinstance(value, int):
        if not 1 <= value <= INT4_MAX:
            raise Fault((), f"an id must be between 1 and {INT4_MAX}")
        return value
    return clean_text(value)


Ref = Annotated[int | str, AfterValidator(clean_ref), WithJsonSchema(
    {"anyOf": [{"type": "integer", "minimum": 1, "maximum": INT4_MAX}, {"type": "string"}]})]

"""File splitters: one incoming file split into several contact lists by rules on its columns.

A splitter is an ordered list of rules, each a filter expression (`core.filters`, the language
of filter templates, read over the parsed row: its contact fields and `attr.<column>`) and the
list its rows go to; the first rule that is *true* for a row wins. A row no rule selects goes
to `default` — or, with no default, is rejected with its line ("no splitter rule matched").

    {"rules": [{"when": "attr.region = 'north'", "list_id": 4},
               {"when": "area_code(phone1) in ('212', '646')", "list_id": 5}],
     "default": 3}

The definition is checked whole before an import is created (`parse_splitter`, SplitterError
naming the field at fault); routing (`Splitter.route`) is plain and deterministic for a given
`now`, so a chunk re-parsed after a crash goes to the same lists.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import filters
from .rows import ROW_FIELDS

MAX_RULES = 50
MAX_RULE_CHARS = 1000
NO_MATCH = "no splitter rule matched"


class SplitterError(ValueError):
    """A splitter refused: `field` is the path at fault (`rules[2].when`, `default`...)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def _list_id(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        raise SplitterError(field, "a list id is a positive integer")
    return value


@dataclass(frozen=True)
class Splitter:
    rules: tuple[tuple[filters.Filter, int], ...]
    default: int | None

    @property
    def list_ids(self) -> list[int]:
        """Every list a row may go to, in first-use order."""
        ids = [target for _, target in self.rules] + ([self.default] if self.default else [])
        return list(dict.fromkeys(ids))

    def route(self, rows: Sequence[tuple], now: datetime) -> tuple[dict[int, list[tuple]], list[dict[str, Any]]]:
        """Parsed rows (tuples of ROW_FIELDS) by target list, and the rejects of rows no rule took."""
        tests = [(filters.predicate(f, now), target) for f, target in self.rules]
        routed: dict[int, list[tuple]] = {}
        rejects: list[dict[str, Any]] = []
        for row in rows:
            contact = dict(zip(ROW_FIELDS, row))
            target = next((t for test, t in tests if test(contact) is True), self.default)
            if target is None:
                rejects.append({"line": row[0], "field": "splitter", "reason": NO_MATCH,
                                "raw": [row[1] or ""]})
            else:
                routed.setdefault(target, []).append(row)
        return routed, rejects


def parse_splitter(raw: Any) -> Splitter:
    """The checked splitter of an import's `splitter` option (SplitterError otherwise)."""
    if not isinstance(raw, Mapping):
        raise SplitterError("splitter", "a splitter is an object with rules and default")
    unknown = set(raw) - {"rules", "default"}
    if unknown:
        raise SplitterError(sorted(unknown)[0], "unknown splitter key (rules, default)")
    rules = raw.get("rules")
    if not isinstance(rules, list) or not rules:
        raise SplitterError("rules", "a splitter needs a list of at least one rule")
    if len(rules) > MAX_RULES:
        raise SplitterError("rules", f"{len(rules)} rules, at most {MAX_RULES}")
    out = []
    for i, rule in enumerate(rules):
        at = f"rules[{i}]"
        if not isinstance(rule, Mapping) or set(rule) != {"when", "list_id"}:
            raise SplitterError(at, "a rule is an object with exactly when and list_id")
        when = rule["when"]
        if not isinstance(when, str):
            raise SplitterError(f"{at}.when", "a rule's condition is a filter expression (a string)")
        try:
            expr = filters.parse(when, max_length=MAX_RULE_CHARS)
        except filters.FilterError as exc:
            raise SplitterError(f"{at}.when", str(exc)) from None
        out.append((expr, _list_id(rule["list_id"], f"{at}.list_id")))
    default = raw.get("default")
    return Splitter(tuple(out), None if default is None else _list_id(default, "default"))

"""What every `pom` command over the gateway prints: a Rich table for people by default, the
gateway's JSON exactly with `--json` (for scripts), and for a refusal one line on stderr."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from .client import PomError

NUMERIC = {"id", "total", "priority", "attempts", "answered", "abandoned", "rate", "seconds", "count", "added",
           "already", "removed", "rows_read", "rows_loaded", "rows_rejected", "duplicates", "dnc_flagged"}


class UsageError(ValueError):
    """Bad input found before any request (exit 2)."""


def add_json_flags(top: argparse.ArgumentParser, groups: Sequence[argparse.ArgumentParser]) -> None:
    """`--json` on `pom` and on every command of `groups`, so that both `pom --json jobs list`
    and `pom jobs list --json` work (a command's flag is SUPPRESSed unless given, so it does
    not undo the top-level one)."""
    top.add_argument("--json", action="store_true", help="print the gateway's JSON answer (for scripts)")
    for group in groups:
        _json_leaf(group)


def _json_leaf(parser: argparse.ArgumentParser) -> None:
    if parser._subparsers:
        for action in parser._subparsers._group_actions:
            for child in set(action.choices.values()):
                _json_leaf(child)
    elif "--json" in parser._option_string_actions:
        parser._option_string_actions["--json"].default = argparse.SUPPRESS
    else:
        parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                            help="print the gateway's JSON answer (for scripts)")


def emit(out: Any, args: argparse.Namespace, columns: Sequence[str] | None = None, title: str | None = None,
         rows: str | None = None, console: Console | None = None) -> int:
    """Print `out` (the answer) and return exit code 0: its JSON with `--json`; else a table of
    its items (a list, or the list under `rows`; `columns` or the first item's keys), or of its
    fields (a dict), or nothing (None, a 204)."""
    if getattr(args, "json", False):
        print(json.dumps(out, indent=2, default=str))
        return 0
    if out is None:
        return 0
    console = console or Console()
    items = out[rows] if rows else out
    if isinstance(items, list):
        rest = {k: v for k, v in out.items() if k != rows and v is not None} if rows else {}
        if rest:                                   # the answer's other members (`next`, ...) above it
            console.print(" ".join(f"{k}={cell(v)}" for k, v in rest.items()), soft_wrap=True)
        console.print(table(items, columns, title))
    else:
        console.print(fields(out, title))
    return 0


def said(text: str) -> int:
    """What a command did that has no answer to print (a delete, a revoke): on stderr; exit 0."""
    print(text, file=sys.stderr)
    return 0


def table(items: list[dict], columns: Sequence[str] | None = None, title: str | None = None) -> Table:
    """One row per item; a nested value shown compact (`k=v ...` for a dict)."""
    names = list(columns or (items[0].keys() if items else ()))
    out = Table(title=title)
    for name in names:
        out.add_column(name, justify="right" if name in NUMERIC or name.endswith("_id") else "left")
    for item in items:
        out.add_row(*(cell(item.get(name)) for name in names))
    if not items:
        out.caption = "(none)"
    return out


def fields(item: dict, title: str | None = None) -> Table:
    """One row per field of `item`."""
    out = Table(title=title, show_header=False)
    out.add_column("field", style="bold")
    out.add_column("value")
    for name, value in item.items():
        out.add_row(name, cell(value))
    return out


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return " ".join(f"{k}={cell(v) if not isinstance(v, (dict, list)) else json.dumps(v, default=str)}"
                        for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(cell(v) if not isinstance(v, (dict, list)) else json.dumps(v, default=str) for v in value)
    return str(value)


def reason(exc: PomError) -> str:
    """One line for a refusal: the gateway's detail and, for bad input, the first field at fault
    (`HTTP 422: name: String should have at most 200 characters (and 1 more)`)."""
    body = exc.body if isinstance(exc.body, dict) else {"detail": str(exc.body)}
    text = body.get("detail") or body.get("message") or body.get("title") or "no reason given"
    errors = body.get("errors") or []
    if errors and isinstance(errors[0], dict) and (errors[0].get("path") or errors[0].get("field")):
        first = errors[0]
        where = first.get("path") or (f"line {first['line']}: {first['field']}" if first.get("line") else first["field"])
        text = f"{where}: {first.get('message') or first.get('reason', '')}" + (
            f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
    if exc.status == 401:
        text += " (give a token: --token, $POM_TOKEN or $POM_DATA_DIR/admin-token)"
    return f"HTTP {exc.status}: " + " ".join(str(text).split())

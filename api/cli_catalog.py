"""`pom codes list|show|create|update|delete`: completion codes (the system's, read-only, and
each campaign's custom codes). A Rich table by default, the gateway's JSON with `--json`;
names and flags are checked here (exit 2 naming the option) before any request, the gateway's
refusals exit 1 (api/cli.py)."""
from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from pom_actors.core.codes import FLAGS, name_fault

from .client import PomClient

CODE_COLUMNS = ("id", "campaign_id", "name", "system", *FLAGS)


def _id(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{text!r}: an id from 1 to {2**31 - 1}")
    return int(text)


def _code_name(text: str) -> str:
    if (fault := name_fault(text)) is not None:
        raise argparse.ArgumentTypeError(fault)
    return text


def _flag(text: str) -> tuple[str, bool]:
    name, _, value = text.partition("=")
    if name not in FLAGS or value.lower() not in ("true", "false", ""):
        raise argparse.ArgumentTypeError(f"{text!r}: FLAG or FLAG=true|false, FLAG one of {', '.join(FLAGS)}")
    return name, value.lower() != "false"


def add_parsers(sub) -> None:
    codes = sub.add_parser("codes", help="completion codes (changes: admin, integration)")
    csub = codes.add_subparsers(dest="action", required=True)
    clist = csub.add_parser("list", help="codes: a campaign's, the system's, or all")
    clist.add_argument("--campaign", type=_id, help="this campaign's custom codes")
    clist.add_argument("--system", action=argparse.BooleanOptionalAction, help="only system (or only custom) codes")
    csub.add_parser("show", help="one code").add_argument("id", type=_id)
    ccreate = csub.add_parser("create", help="a custom code of a campaign")
    ccreate.add_argument("campaign", type=_id)
    ccreate.add_argument("name", type=_code_name)
    cupdate = csub.add_parser("update", help="change a custom code's flags")
    cupdate.add_argument("id", type=_id)
    for p in (ccreate, cupdate):
        p.add_argument("flags", nargs="*", type=_flag, metavar="FLAG[=true|false]", help=", ".join(FLAGS))
    csub.add_parser("delete", help="delete a custom code its campaign's strategy does not declare").add_argument(
        "id", type=_id)
    for p in csub.choices.values():
        p.add_argument("--json", action="store_true", help="the gateway's JSON answer")


def run(client: PomClient, args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console()
    if args.action == "delete":
        client.delete_completion_code(args.id)
        console.print(f"completion code {args.id} deleted")
        return 0
    out: Any = {
        "list": lambda: client.completion_codes(args.campaign, args.system),
        "show": lambda: client.completion_code(args.id),
        "create": lambda: client.create_completion_code(args.campaign, args.name, **dict(args.flags)),
        "update": lambda: client.update_completion_code(args.id, **dict(args.flags)),
    }[args.action]()
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        console.print(_table("completion codes", CODE_COLUMNS, out if isinstance(out, list) else [out]))
    return 0


def _table(title: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for c in columns:
        table.add_column(c, justify="right" if c in ("id", "campaign_id") else "left")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row[c]) for c in columns))
    return table

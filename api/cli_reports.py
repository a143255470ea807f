"""`pom reports attempts|abandons|agent-time` and `pom purges list|show|run|config|set-config`:
a Rich table by default, the gateway's JSON with `--json` (for scripts). Times are checked here
(exit 2 naming the option) before any request; the gateway's refusals exit 1 (api/cli.py)."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from rich.console import Console

from pom_actors.core.reports import MAX_BUCKET_S, MAX_ROWS, MIN_BUCKET_S

from .cli_output import table as rows_table
from .client import PomClient

COLUMNS = {
    "attempts": ("job_id", "at", "code", "attempts"),
    "abandons": ("job_id", "at", "attempts", "answered", "abandoned", "rate"),
    "agent-time": ("agent_id", "login", "state", "seconds", "entered"),
}
RUN_COLUMNS = ("id", "trigger", "state", "requested_by", "created_at", "finished_at", "batches", "counts", "message")


def _time(text: str) -> str:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-30T08:00:00Z)") from None
    return text


def _bounded(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r}: a whole number from {low} to {high}")
        return value
    return parse


def add_parsers(sub) -> None:
    reports = sub.add_parser("reports", help="attempts by code, abandon rates, agent time (admin, supervisor)")
    rsub = reports.add_subparsers(dest="action", required=True)
    for name, text in (("attempts", "attempts by completion code per job and hour"),
                       ("abandons", "abandon rate per job and window"),
                       ("agent-time", "seconds per agent and state")):
        r = rsub.add_parser(name, help=text)
        if name == "agent-time":
            r.add_argument("--agent", type=_bounded(1, 2**31 - 1), help="this agent id only")
        else:
            r.add_argument("--job", type=_bounded(1, 2**31 - 1), help="this job only")
        r.add_argument("--since", type=_time, help="ISO time (default: until minus 24 h)")
        r.add_argument("--until", type=_time, help="ISO time (default: now)")
        if name == "attempts":
            r.add_argument("--bucket", type=_bounded(MIN_BUCKET_S, MAX_BUCKET_S), help="seconds (default 3600)")
        if name == "abandons":
            r.add_argument("--window", type=_bounded(MIN_BUCKET_S, MAX_BUCKET_S), help="seconds (default 900)")
        r.add_argument("--limit", type=_bounded(1, MAX_ROWS), help="rows at most (default 1000)")
    purges = sub.add_parser("purges", help="purge runs and retention (read: admin, supervisor; change: admin)")
    psub = purges.add_subparsers(dest="action", required=True)
    plist = psub.add_parser("list", help="purge runs, newest first")
    plist.add_argument("--limit", type=_bounded(1, 500))
    plist.add_argument("--before", type=_bounded(1, 2**31 - 1), help="runs with an id below this")
    psub.add_parser("show", help="one run").add_argument("id", type=_bounded(1, 2**31 - 1))
    psub.add_parser("run", help="queue a purge now (admin)")
    psub.add_parser("config", help="the retention config")
    pset = psub.add_parser("set-config", help="replace the retention config from a JSON file (admin)")
    pset.add_argument("file", help="JSON document; left-out fields take the defaults")


def run(client: PomClient, args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console()
    if args.cmd == "reports":
        out = _report(client, args)
        table = rows_table(out["rows"], COLUMNS[args.action], f"{args.action} {out['since']} – {out['until']}"
                           f"{' (limited under load)' if out['limited'] else ''}"
                           f"{' (truncated)' if out['truncated'] else ''}")
    elif args.action == "set-config":
        try:
            document = json.loads(Path(args.file).read_text())
        except (OSError, ValueError) as exc:
            print(f"pom: {args.file}: {exc}", file=sys.stderr)
            return 2
        out = client.set_retention(document)
        table = None
    else:
        out = {"list": lambda: client.purges(limit=args.limit, before=args.before),
               "show": lambda: client.purge(args.id), "run": client.purge_now,
               "config": client.retention}[args.action]()
        runs = out["runs"] if args.action == "list" else [out] if args.action in ("show", "run") else None
        table = rows_table(runs, RUN_COLUMNS, "purge runs") if runs is not None else None
    if getattr(args, "json", False) or table is None:
        print(json.dumps(out, indent=2, default=str))
    else:
        console.print(table)
    return 0


def _report(client: PomClient, args: argparse.Namespace) -> dict:
    common = {"since": args.since, "until": args.until, "limit": args.limit}
    if args.action == "attempts":
        return client.report_attempts(job=args.job, bucket_s=args.bucket, **common)
    if args.action == "abandons":
        return client.report_abandons(job=args.job, window_s=args.window, **common)
    return client.report_agent_time(agent=args.agent, **common)


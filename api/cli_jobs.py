"""`pom jobs list|show|create|start|pause|resume|stop|watch`: jobs through the gateway.

`jobs watch JOB` follows a job with a progress bar until it ends: exit 0 when it completed, 1
when it was stopped or failed (with its reason) or `--timeout` passed first (it goes on)."""
from __future__ import annotations

import argparse
import json
import sys

from .cli_output import emit, fields, table
from .cli_system import zone_name
from .client import PomClient, WaitTimeout

COLUMNS = ("id", "campaign", "state", "zone", "total", "work_items", "created_at", "ended_at")


def add_parsers(sub) -> None:
    jobs = sub.add_parser("jobs", help="list, show, create, control and watch jobs")
    jsub = jobs.add_subparsers(dest="action", required=True)
    jlist = jsub.add_parser("list", help="every job (all pages)")
    jlist.add_argument("--state", help="queued, running, paused, completed, stopped, failed...")
    jlist.add_argument("--campaign", type=int, help="this campaign's jobs only")
    jcreate = jsub.add_parser("create", help="a new job of a campaign, started unless --queued")
    jcreate.add_argument("campaign", help="campaign id or name")
    jcreate.add_argument("--queued", action="store_true", help="create without starting")
    jcreate.add_argument("--zone", type=zone_name, help="run it in this zone (default: the campaign's)")
    jcreate.add_argument("--idempotency-key", help="a retry with the same key gets the first job")
    for action in ("show", "start", "pause", "resume", "stop"):
        jsub.add_parser(action, help=f"{action} a job" if action != "show" else "one job and its attempts by code") \
            .add_argument("job", type=int)
    watch = jsub.add_parser("watch", help="a progress bar until the job ends (exit 0: completed)")
    watch.add_argument("job", type=int)
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between readings (default 1)")
    watch.add_argument("--timeout", type=float, help="give up after this many seconds (exit 1; the job goes on)")


def run(client: PomClient, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        return emit(client.jobs(args.state, args.campaign), args, COLUMNS, "jobs")
    if action == "watch":
        return watch(client, args)
    if action == "show":
        job = client.job(args.job)
    elif action == "create":
        campaign = int(args.campaign) if args.campaign.isdigit() else args.campaign
        job = client.create_job(campaign, start=not args.queued, zone=args.zone, idempotency_key=args.idempotency_key)
    else:
        job = client.command(args.job, action)
    return emit(job, args, title=f"job {job['id']}")


def watch(client: PomClient, args: argparse.Namespace) -> int:
    """With `--json`, each reading is one JSON line on stdout; else a bar on stderr and the
    ended job's fields on stdout."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    as_json, terminal = getattr(args, "json", False), Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=terminal, disable=as_json or not terminal.is_terminal, transient=True) as bar:
        task = bar.add_task(f"job {args.job}", total=None)

        def show(job: dict) -> None:
            if as_json:
                print(json.dumps(job, default=str), flush=True)
            bar.update(task, total=job["total"] or None, completed=job["work_items"].get("done", 0),
                       description=f"job {job['id']} {job['campaign']} [{job['state']}]")
        try:
            job = client.wait_until_done(args.job, progress=show, timeout=args.timeout, interval=max(0.05, args.interval))
        except WaitTimeout as exc:
            print(f"pom: {exc} (it goes on: pom jobs watch {args.job})", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"pom: stopped watching; job {args.job} goes on", file=sys.stderr)
            return 130
    if not as_json:
        Console().print(fields({k: job.get(k) for k in ("id", "campaign", "state", "reason", "total",
                                                        "work_items", "started_at", "ended_at")}, f"job {job['id']}"))
        codes = job.get("attempts_by_code") or {}
        if codes:
            Console().print(table([{"code": c, "attempts": n} for c, n in codes.items()], title="attempts by code"))
    if job["state"] != "completed":
        print(f"pom: job {job['id']} {job['state']}: {job.get('reason') or 'no reason given'}", file=sys.stderr)
        return 1
    return 0

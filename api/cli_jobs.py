"""`pom jobs list|show|create|start|pause|resume|stop|set|prioritize|pacing|watch`: jobs through
the gateway (`set`: the run-time changes of PATCH /api/v1/jobs/{id}; `prioritize`: priority
contacts; `pacing`: GET /api/v1/jobs/{id}/pacing).

`jobs watch JOB` follows a job with a progress bar until it ends: exit 0 when it completed, 1
when it was stopped or failed (with its reason) or `--timeout` passed first (it goes on)."""
from __future__ import annotations

import argparse
import json
import sys

from pom_actors.core.dialling import ListsError, dialling_order

from .cli_output import UsageError, emit, fields, table
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
    jsub.choices["start"].add_argument("--idempotency-key", help="a retry with the same key gets the first answer")
    jsub.add_parser("pacing", help="what its pacers do now: per handler, and each manager's state").add_argument(
        "job", type=int)
    jset = jsub.add_parser("set", help="run-time changes of a job: priority, pacing, filter template")
    jset.add_argument("job", type=int)
    jset.add_argument("--priority", type=_priority, help="1..10, or 'campaign' for the campaign's again")
    jset.add_argument("--pacing", action="append", type=_pacing_param, default=[], metavar="HANDLER.PARAM=VALUE",
                      help="PARAM: settings.KEY, max_concurrent or attempts_per_second; VALUE as JSON "
                           "(null: the default); repeatable")
    jset.add_argument("--reset-pacing", action="append", default=[], metavar="HANDLER",
                      help="this handler back to its strategy's pacing; repeatable")
    jfilter = jset.add_mutually_exclusive_group()
    jfilter.add_argument("--filter", type=int, metavar="TEMPLATE", help="claim by this filter template")
    jfilter.add_argument("--no-filter", action="store_true", help="no filter")
    jset.add_argument("--dialling-order", type=_dialling_order, metavar="KIND,KIND,KIND",
                      help="priority, retries and regular, each once, in the order to dial them")
    prioritize = jsub.add_parser("prioritize", help="dial these contacts of the job's lists as priority contacts")
    prioritize.add_argument("job", type=int)
    prioritize.add_argument("contacts", type=int, nargs="+", metavar="CONTACT_ID")
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
    if action == "set":
        job = client.update_job(args.job, **changes(args))
        return emit(job, args, title=f"job {job['id']}")
    if action == "prioritize":
        return emit(client.add_priority_contacts(args.job, args.contacts), args, title=f"job {args.job}")
    if action == "pacing":
        return pacing(client.job_pacing(args.job), args)
    if action == "show":
        job = client.job(args.job)
    elif action == "start":
        job = client.start(args.job, args.idempotency_key)
    elif action == "create":
        campaign = int(args.campaign) if args.campaign.isdigit() else args.campaign
        job = client.create_job(campaign, start=not args.queued, zone=args.zone, idempotency_key=args.idempotency_key)
    else:
        job = client.command(args.job, action)
    return emit(job, args, title=f"job {job['id']}")


PACING_COLUMNS = ("handler", "mode", "applied", "dials", "in_flight", "agents", "ready", "lines", "lines_per_agent",
                  "abandon_rate", "alarm")


def pacing(out: dict, args: argparse.Namespace) -> int:
    """A table of the handlers' figures and one of the managers (the JSON with `--json`)."""
    if getattr(args, "json", False):
        return emit(out, args)
    from rich.console import Console

    handlers = [{"handler": name, **figures} for name, figures in out["handlers"].items()]
    Console().print(table(handlers, PACING_COLUMNS, f"job {out['job_id']} [{out['state']}]: pacing"))
    if out["managers"]:
        Console().print(table(out["managers"], ("name", "state", "error"), "managers"))
    return 0


def _priority(text: str) -> int | str:
    if text == "campaign":
        return text
    if not text.isdigit() or not 1 <= int(text) <= 10:
        raise argparse.ArgumentTypeError(f"{text!r}: a priority from 1 to 10, or 'campaign'")
    return int(text)


def _dialling_order(text: str) -> list[str]:
    try:
        return list(dialling_order([k.strip() for k in text.split(",")]))
    except ListsError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _pacing_param(text: str) -> tuple[str, list[str], object]:
    """`call.settings.target=0.02` -> ("call", ["settings", "target"], 0.02)."""
    target, sep, raw = text.partition("=")
    handler, *path = target.split(".")
    if not sep or not handler or path not in (["max_concurrent"], ["attempts_per_second"]) and \
            not (len(path) == 2 and path[0] == "settings" and path[1]):
        raise argparse.ArgumentTypeError(f"{text!r}: HANDLER.PARAM=VALUE, PARAM settings.KEY, max_concurrent "
                                         "or attempts_per_second")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return handler, path, value


def changes(args: argparse.Namespace) -> dict:
    """The PATCH body of `pom jobs set` (UsageError when it changes nothing)."""
    out: dict = {}
    if args.priority is not None:
        out["priority"] = None if args.priority == "campaign" else args.priority
    pacing: dict = {}
    for handler, path, value in args.pacing:
        into = pacing.setdefault(handler, {})
        for key in path[:-1]:
            into = into.setdefault(key, {})
        into[path[-1]] = value
    pacing.update(dict.fromkeys(args.reset_pacing))
    if pacing:
        out["pacing"] = pacing
    if args.filter is not None or args.no_filter:
        out["filter_id"] = args.filter
    if args.dialling_order is not None:
        out["dialling_order"] = args.dialling_order
    if not out:
        raise UsageError("nothing to change: give --priority, --pacing, --reset-pacing, --filter, --no-filter "
                         "or --dialling-order")
    return out


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

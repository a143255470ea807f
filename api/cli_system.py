"""`pom health`, `pom alarms`, `pom zones ...`, `pom tokens ...` and `pom audit`: the system's
state, its zones, its API tokens and the audit log of changes, through the gateway."""
from __future__ import annotations

import argparse
import sys

from .cli_output import emit, said
from .client import PomClient

ROLES = ("admin", "supervisor", "integration", "agent")


def zone_name(text: str) -> str:
    """A zone name argument, checked here (exit 2 with the rule) before any request."""
    from pom_actors.core.zones import ZoneError, check_name

    try:
        return check_name(text)
    except ZoneError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parsers(sub) -> None:
    from pom_actors.core.zones import ZoneState

    sub.add_parser("health", help="state of each component")
    alarms = sub.add_parser("alarms", help="the load monitor's alarms, newest first")
    alarms.add_argument("--state", choices=("active", "cleared", "all"), default="all")
    alarms.add_argument("--limit", type=int, default=100, help="at most this many (1-1000, default 100)")
    alarms.add_argument("--before", type=int, help="those with an id below this (the next page: the last id shown)")
    alarms.add_argument("--all", action="store_true", help="every alarm (all pages; --limit and --before ignored)")

    states = [str(s) for s in ZoneState]
    zones = sub.add_parser("zones", help="zones of POM servers: list, create, set state or failover, delete")
    zsub = zones.add_subparsers(dest="action", required=True)
    zsub.add_parser("list", help="every zone, its state, live servers and jobs")
    for action, text in (("show", "one zone"), ("delete", "delete a zone nothing uses (admin)")):
        zsub.add_parser(action, help=text).add_argument("name", type=zone_name)
    zcreate = zsub.add_parser("create", help="a new zone (admin)")
    zcreate.add_argument("name", type=zone_name)
    zcreate.add_argument("--failover", type=zone_name, help="the zone its jobs go to when it is not available")
    zcreate.add_argument("--state", choices=states, default="up")
    zcreate.add_argument("--reason", default="")
    zstate = zsub.add_parser("set-state", help="up, down or maintenance: the director moves its jobs (admin)")
    zstate.add_argument("name", type=zone_name)
    zstate.add_argument("state", choices=states)
    zstate.add_argument("--reason", default="", help="why (kept with the zone, audited)")
    zfail = zsub.add_parser("set-failover", help="change its failover zone; none without ZONE (admin)")
    zfail.add_argument("name", type=zone_name)
    zfail.add_argument("failover", type=zone_name, nargs="?")

    tokens = sub.add_parser("tokens", help="API tokens (admin): create, list, revoke")
    tsub = tokens.add_subparsers(dest="action", required=True)
    tcreate = tsub.add_parser("create", help="a new token, shown once")
    tcreate.add_argument("--name", required=True)
    tcreate.add_argument("--role", required=True, choices=ROLES)
    tcreate.add_argument("--agent", type=int, help="the agent id of an agent token")
    tlist = tsub.add_parser("list", help="every token (never their values)")
    tlist.add_argument("--role", choices=ROLES, help="only tokens of this role")
    tlist.add_argument("--revoked", action=argparse.BooleanOptionalAction,
                       help="only the revoked tokens (--no-revoked: only those in force)")
    tsub.add_parser("revoke", help="revoke a token").add_argument("id", type=int)

    audit = sub.add_parser("audit", help="the audit log of changes (admin, supervisor)")
    audit.add_argument("--since", help="ISO time")
    audit.add_argument("--token-id", type=int, help="made with this token id")
    audit.add_argument("--path", help="path prefix, e.g. /api/v1/jobs")
    audit.add_argument("--method")
    audit.add_argument("--after", type=int, help="entries after this id (the `next` of a page)")
    audit.add_argument("--limit", type=int)


def run(client: PomClient, args: argparse.Namespace) -> int:
    if args.cmd == "health":
        out = client.health()
        if getattr(args, "json", False) or not out.get("components"):
            return emit(out, args, title="health")
        return emit([{"component": name, "state": c.get("state", "up"), "detail": {k: v for k, v in c.items()
                                                                                   if k != "state"}}
                     for name, c in out["components"].items()], args, title=f"POM {out['status']}")
    if args.cmd == "alarms":
        rows = client.all_alarms(args.state) if args.all else client.alarms(args.state, args.limit, args.before)
        return emit(rows, args, title=f"alarms ({args.state})")
    if args.cmd == "audit":
        out = client.audit(after=args.after, limit=args.limit, since=args.since, token=args.token_id,
                           path=args.path, method=args.method)
        return emit(out, args, title="audit log", rows="entries")
    if args.cmd == "tokens":
        return _tokens(client, args)
    return _zones(client, args)


def _tokens(client: PomClient, args: argparse.Namespace) -> int:
    if args.action == "create":
        out = client.create_token(args.name, args.role, args.agent)
        print("pom: the token is shown this once: keep it now (the server keeps only its hash)", file=sys.stderr)
        return emit(out, args, title="new token")
    if args.action == "list":
        return emit(client.tokens(args.role, args.revoked), args, title="tokens")
    client.revoke_token(args.id)
    return said(f"token {args.id} revoked")


def _zones(client: PomClient, args: argparse.Namespace) -> int:
    """`pom zones list|show|create|set-state|set-failover|delete` (changes: admin only)."""
    if args.action == "list":
        return emit(client.zones(), args, title="zones", rows="zones")
    if args.action == "delete":
        client.delete_zone(args.name)
        return said(f"zone {args.name} deleted")
    out = {"show": lambda: client.zone(args.name),
           "create": lambda: client.create_zone(args.name, args.failover, args.state, args.reason),
           "set-state": lambda: client.set_zone_state(args.name, args.state, args.reason),
           "set-failover": lambda: client.set_zone_failover(args.name, args.failover)}[args.action]()
    return emit(out, args, title=f"zone {args.name}")

"""`pom campaigns ...` and `pom rules ...`: campaigns (create, read, change, enable, disable, delete)
and the Rule Editor, through the gateway. A `--params`, `--schedule`, `--finish` or `--lists` that is not
JSON exits 2 naming the option, before any request."""
from __future__ import annotations

import argparse
import json
from typing import Any

from .cli_output import UsageError, emit, said
from .cli_system import zone_name
from .client import PomClient

CAMPAIGN_COLUMNS = ("id", "name", "enabled", "priority", "zone", "list_id", "strategy_id", "description")
RULE_COLUMNS = ("id", "kind", "campaign_id", "enabled", "params")


def _json(option: str):
    def parse(text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{option}: not JSON ({exc})") from None
    return parse


def add_parsers(sub) -> None:
    campaigns = sub.add_parser("campaigns", help="campaigns: list, show, create, update, enable, disable, delete")
    csub = campaigns.add_subparsers(dest="action", required=True)
    create = csub.add_parser("create", help="a new campaign: a strategy version over one list or several")
    create.add_argument("name")
    create.add_argument("--strategy", type=int, required=True, help="the strategy version's id (pom strategies list)")
    target = create.add_mutually_exclusive_group(required=True)
    target.add_argument("--list", type=int, help="its one contact list")
    target.add_argument("--lists", type=_json("--lists"), help='its lists as JSON: [{"list_id": 2, "priority": 8}, ...]')
    create.add_argument("--description", default="")
    create.add_argument("--priority", type=int, help="1..10 (default 5)")
    create.add_argument("--schedule", type=_json("--schedule"), help="the schedule as JSON")
    create.add_argument("--finish", type=_json("--finish"), help="the finish conditions as JSON")
    create.add_argument("--filter", type=int, help="a filter template's id")
    create.add_argument("--zone", type=zone_name, help="the zone its jobs run in (default: the default zone)")
    clist = csub.add_parser("list", help="every campaign (all pages)")
    which = clist.add_mutually_exclusive_group()
    which.add_argument("--enabled", dest="enabled", action="store_const", const=True, help="the enabled ones only")
    which.add_argument("--disabled", dest="enabled", action="store_const", const=False, help="the disabled ones only")
    for action, text in (("show", "one campaign"), ("enable", "enable it: jobs may be created again"),
                         ("disable", "disable it: no new job, its schedule stops"),
                         ("delete", "delete it (refused while one of its jobs has not ended)")):
        csub.add_parser(action, help=text).add_argument("campaign", type=int)
    update = csub.add_parser("update", help="change its description, priority, schedule, finish or lists")
    update.add_argument("campaign", type=int)
    update.add_argument("--description")
    update.add_argument("--priority", type=int)
    update.add_argument("--schedule", type=_json("--schedule"), default=argparse.SUPPRESS,
                        help="the schedule as JSON ('null' removes it)")
    update.add_argument("--finish", type=_json("--finish"), default=argparse.SUPPRESS,
                        help="the finish conditions as JSON")
    update.add_argument("--lists", type=_json("--lists"), default=argparse.SUPPRESS,
                        help='all its lists as JSON: [{"list_id": 2, "priority": 8, "sort": [{"field": '
                             '"attr.balance", "type": "number", "order": "desc"}]}, ...]')

    rules = sub.add_parser("rules", help="the Rule Editor: list, show, create, replace, delete")
    rsub = rules.add_subparsers(dest="action", required=True)
    rlist = rsub.add_parser("list", help="every rule (all pages)")
    scope = rlist.add_mutually_exclusive_group()
    scope.add_argument("--campaign", type=int, help="this campaign's rules")
    scope.add_argument("--system", action="store_true", help="the system-wide rules")
    rsub.add_parser("show").add_argument("rule", type=int)
    rsub.add_parser("delete").add_argument("rule", type=int)
    for action, text in (("create", "a new rule"), ("replace", "replace a rule")):
        r = rsub.add_parser(action, help=text)
        if action == "replace":
            r.add_argument("rule", type=int)
        r.add_argument("kind", help="the rule's kind (docs/rules.md)")
        r.add_argument("--params", type=_json("--params"), default={}, help="its parameters as a JSON object")
        r.add_argument("--campaign", type=int, help="a campaign's rule (default: system-wide)")
        r.add_argument("--disabled", action="store_true")


def run(client: PomClient, args: argparse.Namespace) -> int:
    return _campaigns(client, args) if args.cmd == "campaigns" else _rules(client, args)


def _campaigns(client: PomClient, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        return emit(client.campaigns(args.enabled), args, CAMPAIGN_COLUMNS, "campaigns")
    if action == "delete":
        client.delete_campaign(args.campaign)
        return said(f"campaign {args.campaign} deleted")
    if action == "create":
        options = {k: v for k, v in (("lists", args.lists), ("priority", args.priority), ("schedule", args.schedule),
                                     ("finish", args.finish), ("filter_id", args.filter), ("zone", args.zone))
                   if v is not None}
        out = client.create_campaign(args.name, args.strategy, args.list, description=args.description, **options)
    elif action == "show":
        out = client.campaign(args.campaign)
    elif action in ("enable", "disable"):
        out = client.update_campaign(args.campaign, enabled=action == "enable")
    else:
        changes = {k: getattr(args, k) for k in ("description", "priority") if getattr(args, k) is not None}
        changes.update({k: getattr(args, k) for k in ("schedule", "finish", "lists") if hasattr(args, k)})
        if not changes:
            raise UsageError("nothing to change: give --description, --priority, --schedule, --finish or --lists")
        out = client.update_campaign(args.campaign, **changes)
    return emit(out, args, title=f"campaign {out['id']}")


def _rules(client: PomClient, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        return emit(client.rules(args.campaign, args.system), args, RULE_COLUMNS, "rules")
    if action == "delete":
        client.delete_rule(args.rule)
        return said(f"rule {args.rule} deleted")
    if action == "show":
        out = client.rule(args.rule)
    elif action == "create":
        out = client.create_rule(args.kind, args.params, args.campaign, not args.disabled)
    else:
        out = client.replace_rule(args.rule, args.kind, args.params, args.campaign, not args.disabled)
    return emit(out, args, title=f"rule {out['id']}")

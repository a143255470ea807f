"""`pom codes list|show|create|update|disable|enable|delete` (completion codes: the system's, read-only, and
each campaign's custom codes), `pom scripts list|show|create|update|delete` (agent scripts) and
`pom strategies list|show|create|delete` (stored strategy versions; `create` uploads a file, checked
here first as `pom strategy validate` checks it).
A Rich table by default, the gateway's JSON with `--json` (api/cli_output.py); names, flags and
files are checked here (exit 2 naming the option) before any request, the gateway's refusals
exit 1 (api/cli.py)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from pom_actors.core.codes import FLAGS, name_fault
from pom_actors.core.scripts import NAME as SCRIPT_NAME, SCRIPT_TEXT_MAX

from .cli_output import UsageError, emit
from .client import PomClient

CODE_COLUMNS = ("id", "campaign_id", "name", "system", "enabled", *FLAGS)
SCRIPT_COLUMNS = ("id", "name", "kind", "enabled", "description", "updated_at")
STRATEGY_COLUMNS = ("id", "name", "version", "latest", "created_at")
STRATEGY_FILE_MAX = 10 << 20          # the gateway's default body limit (POM_MAX_BODY_BYTES)


def _id(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{text!r}: an id from 1 to {2**31 - 1}")
    return int(text)


def _code_name(text: str) -> str:
    if (fault := name_fault(text)) is not None:
        raise argparse.ArgumentTypeError(fault)
    return text


def _script_name(text: str) -> str:
    if not SCRIPT_NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: a script name matches {SCRIPT_NAME.pattern}")
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
    clist.add_argument("--enabled", action=argparse.BooleanOptionalAction, help="only enabled (or disabled) codes")
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
    csub.add_parser("disable", help="stop offering a custom code to agents (kept in reports)").add_argument(
        "id", type=_id)
    csub.add_parser("enable", help="offer a disabled custom code again").add_argument("id", type=_id)

    scripts = sub.add_parser("scripts", help="agent scripts named by strategies (changes: admin, integration)")
    ssub = scripts.add_subparsers(dest="action", required=True)
    slist = ssub.add_parser("list", help="every script")
    slist.add_argument("--enabled", action=argparse.BooleanOptionalAction, help="only enabled (or disabled) ones")
    ssub.add_parser("show", help="one script").add_argument("id", type=_id)
    screate = ssub.add_parser("create", help="a script from a file (text, or a URL template with --kind url)")
    screate.add_argument("name", type=_script_name)
    screate.add_argument("file", help="the script's text (UTF-8), a template over the contact's attributes")
    supdate = ssub.add_parser("update", help="change a script (what is given)")
    supdate.add_argument("id", type=_id)
    supdate.add_argument("--name", type=_script_name)
    supdate.add_argument("--file", help="a new body")
    supdate.add_argument("--enabled", action=argparse.BooleanOptionalAction, help="enable or disable it")
    for p in (screate, supdate):
        p.add_argument("--kind", choices=("text", "url"), help="text (default) or url: a URL template the desktop opens")
        p.add_argument("--description")
    ssub.add_parser("delete", help="delete a script no campaign's strategy names").add_argument("id", type=_id)

    strategies = sub.add_parser("strategies", help="stored strategy versions (delete: admin, integration)")
    vsub = strategies.add_subparsers(dest="action", required=True)
    vsub.add_parser("list", help="every version, or one name's").add_argument("--name", help="only this name's versions")
    vcreate = vsub.add_parser("create", help="upload a strategy file (YAML or JSON) as its name's next version")
    vcreate.add_argument("file")
    vcreate.add_argument("--list", type=_id, help="check its attribute names against this contact list's")
    vsub.add_parser("show", help="one version with its document").add_argument("id", type=_id)
    vsub.add_parser("delete", help="delete a version no campaign uses and no job ran").add_argument("id", type=_id)


def run(client: PomClient, args: argparse.Namespace) -> int:
    if args.cmd == "scripts":
        return _scripts(client, args)
    if args.cmd == "strategies":
        return _strategies(client, args)
    if args.action == "delete":
        return emit(client.delete_completion_code(args.id), args)
    out = {
        "list": lambda: client.completion_codes(args.campaign, args.system, args.enabled),
        "show": lambda: client.completion_code(args.id),
        "create": lambda: client.create_completion_code(args.campaign, args.name, **dict(args.flags)),
        "update": lambda: client.update_completion_code(args.id, **dict(args.flags)),
        "disable": lambda: client.update_completion_code(args.id, enabled=False),
        "enable": lambda: client.update_completion_code(args.id, enabled=True),
    }[args.action]()
    return emit(out, args, CODE_COLUMNS if args.action == "list" else None, "completion codes")


def _body(path: str, url: bool) -> str:
    """The file's text; a URL without the line end a file has."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    if len(text) > SCRIPT_TEXT_MAX:
        raise UsageError(f"{path}: {len(text)} characters, a script has at most {SCRIPT_TEXT_MAX}")
    return text.strip() if url else text


def _scripts(client: PomClient, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        return emit(client.agent_scripts(args.enabled), args, SCRIPT_COLUMNS, "agent scripts")
    if action == "show":
        return emit(client.agent_script(args.id), args, title=f"agent script {args.id}")
    if action == "delete":
        return emit(client.delete_agent_script(args.id), args)
    kind = args.kind or "text"
    if action == "create":
        out = client.create_agent_script(args.name, _body(args.file, kind == "url"), kind, args.description or "")
    else:
        changes = {k: v for k, v in (("name", args.name), ("description", args.description),
                                     ("enabled", args.enabled)) if v is not None}
        if args.file:
            changes.update(body=_body(args.file, kind == "url"), kind=kind)
        elif args.kind:
            raise UsageError("--kind describes the body of --file: give the file too")
        if not changes:
            raise UsageError("nothing to change: give --name, --file, --description or --enabled/--no-enabled")
        out = client.update_agent_script(args.id, **changes)
    return emit(out, args, title=f"agent script {out['id']}")


def _strategies(client: PomClient, args: argparse.Namespace) -> int:
    if args.action == "list":
        return emit(client.strategies(args.name), args, STRATEGY_COLUMNS, "strategy versions")
    if args.action == "show":
        return emit(client.strategy(args.id), args, title=f"strategy {args.id}")
    if args.action == "create":
        return emit(client.create_strategy(_document(args.file), args.list), args, title="strategy")
    return emit(client.delete_strategy(args.id), args)


def _document(path: str) -> dict:
    """The strategy file as data, checked here as the gateway checks it (but for the list's
    attributes and the outbound policy): every fault on one line each, then UsageError."""
    from pom_actors.core.strategy import StrategyError, load_document, parse_strategy

    try:
        small = Path(path).stat().st_size <= STRATEGY_FILE_MAX
        text = Path(path).read_text(encoding="utf-8") if small else None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    if text is None:
        raise UsageError(f"{path}: larger than {STRATEGY_FILE_MAX >> 20} MiB")
    try:
        document = load_document(text)
        parse_strategy(document)
        json.dumps(document)                       # a YAML date or set has no JSON form
    except StrategyError as exc:                   # a ValueError: first
        first = exc.errors[0]
        more = f" (and {len(exc.errors) - 1} more: pom strategy validate {path})" if len(exc.errors) > 1 else ""
        raise UsageError(f"{path}: {first['path'] or 'document'}: {first['message']}{more}") from None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    return document

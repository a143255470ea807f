"""`pom lists ...`, `pom contacts ...`, `pom imports ...` and `pom dnc ...`: contact lists read,
changed and deleted, a contact shown or deleted, file imports with a progress bar, their
rejects, and DNC lists, through the gateway (docs/api.md, "CLI").

What can be checked here is checked before any request and exits 2 with the option at fault
(an unreadable file, a `--map` that is not COLUMN=FIELD, a region that is not two letters);
the gateway's refusal, or an import that fails or is stopped, exits 1 with one line saying why.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from pom_actors.store.imports import STATES

from .cli_output import UsageError, emit, reason, said
from .client import PomClient, PomError

BATCH = 10_000                      # addresses per request (the gateway's bound)
REJECTS_PAGE = 10_000               # rejected rows per request (the gateway's most)
ENDED = ("done", "failed", "stopped")


# -- parsers -----------------------------------------------------------------------------------
def add_parsers(sub) -> None:
    """The `lists`, `contacts`, `imports` and `dnc` command groups of `pom`."""
    lists = sub.add_parser("lists", help="contact lists: create, read, change, delete, preview a filter, import")
    lsub = lists.add_subparsers(dest="action", required=True)
    lsub.add_parser("list", help="every contact list (without counts)").add_argument("--name", help="only this one")
    lsub.add_parser("show", help="one list with its number of contacts").add_argument("list", type=_list_id)
    lupdate = lsub.add_parser("update", help="rename a list or change its description")
    lupdate.add_argument("list", type=_list_id)
    lupdate.add_argument("--name")
    lupdate.add_argument("--description")
    lsub.add_parser("delete", help="delete a list and its contacts (refused while anything uses it)").add_argument(
        "list", type=_list_id)
    lcontacts = lsub.add_parser("contacts", help="a page of a list's contacts")
    lcontacts.add_argument("list", type=_list_id)
    lcontacts.add_argument("--after", type=int, default=0, help="contacts with an id above this")
    lcontacts.add_argument("--limit", type=int, default=100, help="contacts shown (1-1000, default 100)")
    lcreate = lsub.add_parser("create", help="a new contact list")
    lcreate.add_argument("name")
    lcreate.add_argument("--description", default="")
    lcreate.add_argument("--attribute", action="append", default=[], help="a custom attribute (repeatable)")
    lpreview = lsub.add_parser("preview", help="how many of its contacts a filter expression selects now")
    lpreview.add_argument("list", type=int)
    lpreview.add_argument("expression")
    lpreview.add_argument("--sample", type=int, default=10, help="contacts shown (default 10)")
    limport = lsub.add_parser("import", help="import a CSV file into a contact list, with a progress bar")
    _file_options(limport)
    limport.add_argument("--dedupe-key", choices=("external_id", "phone1", "email"))
    limport.add_argument("--policy", choices=("update", "skip", "keep_both"), help="for a duplicate key")
    limport.add_argument("--split", metavar="RULES.json",
                         help="a splitter: rows routed to lists by rules on their columns (docs/imports.md)")

    lsql = lsub.add_parser("import-sql", help="import the rows of a SELECT on another PostgreSQL database")
    lsql.add_argument("source", metavar="SOURCE.json",
                      help='{"query", "dsn" or "host"/"dbname"/"user", "password_ref"...} (docs/imports.md)')
    lsql.add_argument("--list", type=int, required=True, help="the list to import into")
    lsql.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                      help="map a result column (repeatable): a field, attributes.<name> or ignore")
    lsql.add_argument("--region", help="region of numbers without a country prefix (US, GB...)")
    lsql.add_argument("--dedupe-key", choices=("external_id", "phone1", "email"))
    lsql.add_argument("--policy", choices=("update", "skip", "keep_both"), help="for a duplicate key")
    _follow_options(lsql)

    contacts = sub.add_parser("contacts", help="one contact: show it, delete it (refused while it is dialled)")
    csub = contacts.add_subparsers(dest="action", required=True)
    for action in ("show", "delete"):
        csub.add_parser(action).add_argument("id", type=_contact_id)

    imports = sub.add_parser("imports", help="an import: state, rejected rows, pause/resume/stop; schedules")
    isub = imports.add_subparsers(dest="action", required=True)
    schedules = isub.add_parser("schedules", help="SQL imports the director runs on a cron schedule")
    ssub = schedules.add_subparsers(dest="schedule_action", required=True)
    ssub.add_parser("list", help="every import schedule")
    ssub.add_parser("show").add_argument("id", type=int)
    ssub.add_parser("delete").add_argument("id", type=int)
    screate = ssub.add_parser("create", help='from a JSON file: {"name", "list_id", "schedule", "source", "options"}')
    screate.add_argument("spec", metavar="SPEC.json")
    supdate = ssub.add_parser("update", help="change the fields a JSON file gives")
    supdate.add_argument("id", type=int)
    supdate.add_argument("spec", metavar="SPEC.json")
    ilist = isub.add_parser("list", help="every import (all pages), newest last")
    ilist.add_argument("--list", type=_list_id, help="imports into this contact list")
    ilist.add_argument("--dnc-list", type=_list_id, help="imports into this DNC list")
    ilist.add_argument("--state", choices=STATES)
    for action in ("show", "pause", "resume", "stop"):
        isub.add_parser(action).add_argument("id", type=int)
    rejects = isub.add_parser("rejects", help="the rejected rows (line, field, reason, cells)")
    rejects.add_argument("id", type=int)
    rejects.add_argument("--csv", action="store_true", help="as CSV (formulas neutralised) instead of JSON")
    rejects.add_argument("--output", "-o", help="write to this file instead of stdout")
    rejects.add_argument("--limit", type=int, help="the first N rejected rows only (default: every page)")

    dnc = sub.add_parser("dnc", help="DNC lists: create, add, remove, look up, attach, import")
    dsub = dnc.add_subparsers(dest="action", required=True)
    dsub.add_parser("list", help="every DNC list").add_argument("--name", help="only this one")
    dsub.add_parser("show").add_argument("list", type=int)
    create = dsub.add_parser("create", help="a new DNC list")
    create.add_argument("name")
    create.add_argument("--description", default="")
    create.add_argument("--all-campaigns", action="store_true", help="applies to every campaign")
    dsub.add_parser("delete").add_argument("list", type=int)
    for action in ("add", "remove"):
        p = dsub.add_parser(action, help=f"{action} addresses (phone numbers or e-mail addresses)")
        p.add_argument("list", type=int)
        p.add_argument("addresses", nargs="*")
        p.add_argument("--file", help="also the addresses of this file, one per line")
        p.add_argument("--contact", type=int, action="append", default=[], help="a contact id (repeatable)")
        p.add_argument("--region", help="region of numbers without a country prefix (US, GB...)")
    entries = dsub.add_parser("entries", help="a page of a list's entries")
    entries.add_argument("list", type=int)
    entries.add_argument("--after", type=int, default=0)
    entries.add_argument("--limit", type=int, default=1000)
    lookup = dsub.add_parser("lookup", help="which DNC lists hold these addresses")
    lookup.add_argument("addresses", nargs="+")
    lookup.add_argument("--campaign", type=int, help="only the lists that apply to this campaign")
    lookup.add_argument("--region")
    for action, help in (("attach", "the list applies to the campaign"), ("detach", "it no longer does")):
        p = dsub.add_parser(action, help=help)
        p.add_argument("list", type=int)
        p.add_argument("campaign", type=int)
    dsub.add_parser("campaign", help="the DNC lists that apply to a campaign").add_argument("campaign", type=int)
    dimport = dsub.add_parser("import", help="import a file of addresses into a DNC list, with a progress bar")
    _file_options(dimport)
    dimport.add_argument("--mode", choices=("append", "replace"),
                         help="replace: entries the file lacks are removed when it is done")


def _file_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("file")
    p.add_argument("--list", type=int, required=True, help="the list to import into")
    p.add_argument("--encoding", help="utf-8, utf-16, latin-1... (default: detected)")
    p.add_argument("--delimiter", help="',', ';', 'tab' or '|' (default: detected)")
    p.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                   help="map a header column (repeatable): a field, attributes.<name> or ignore")
    p.add_argument("--region", help="region of numbers without a country prefix (US, GB...)")
    p.add_argument("--max-field-chars", type=int)
    _follow_options(p)


def _follow_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--idempotency-key", help="a retry with the same key and input gets the first import")
    p.add_argument("--no-wait", action="store_true", help="print the import's id and return")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between state reads (default 0.5)")


# -- checks before any request -----------------------------------------------------------------
def _list_id(text: str) -> int:
    return _bounded_id(text, 2**31 - 1)


def _contact_id(text: str) -> int:
    return _bounded_id(text, 2**63 - 1)


def _bounded_id(text: str, top: int) -> int:
    if not text.isdigit() or not 1 <= int(text) <= top:
        raise argparse.ArgumentTypeError(f"{text!r}: an id from 1 to {top}")
    return int(text)


def import_options(args: argparse.Namespace) -> dict[str, Any]:
    """The import's options from the command line (UsageError naming the option at fault)."""
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{args.file}: no such file")
    mapping = _mapping(args.map)
    delimiter = {"tab": "\t", "\\t": "\t"}.get(args.delimiter, args.delimiter)
    if delimiter is not None and len(delimiter) != 1:
        raise UsageError(f"--delimiter {args.delimiter!r}: one character, or 'tab'")
    options = {"encoding": args.encoding, "delimiter": delimiter, "mapping": mapping or None,
               "region": _region(args.region), "max_field_chars": args.max_field_chars}
    for name in ("dedupe_key", "policy", "mode"):
        if getattr(args, name, None) is not None:
            options[name] = getattr(args, name)
    if getattr(args, "split", None) is not None:
        options["splitter"] = _splitter(args.split)
    return {k: v for k, v in options.items() if v is not None}


def _splitter(path: str) -> dict[str, Any]:
    """The splitter of `--split FILE`, checked as the gateway checks it."""
    from pom_actors.core.imports.splitter import SplitterError, parse_splitter
    try:
        text = Path(path).read_text(encoding="utf-8")
        if len(text) > 1 << 20:
            raise UsageError(f"--split {path}: larger than 1 MiB")
        splitter = json.loads(text)
        parse_splitter(splitter)
    except OSError as exc:
        raise UsageError(f"--split {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:      # JSON, UTF-8 or SplitterError
        raise UsageError(f"--split {path}: {exc}") from None
    return splitter


def _json_file(path: str, what: str) -> dict[str, Any]:
    """A JSON object from a file (UsageError naming the file when it is not one)."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{what} {path}: {exc}") from None
    if not isinstance(document, dict):
        raise UsageError(f"{what} {path}: a JSON object is expected")
    return document


def _mapping(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        column, sep, target = item.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise UsageError(f"--map {item!r}: expected COLUMN=FIELD")
        mapping[column.strip()] = target.strip()
    return mapping


def _region(region: str | None) -> str | None:
    if region is not None and not re.fullmatch(r"[A-Za-z]{2}", region):
        raise UsageError(f"--region {region!r}: a two-letter region (US, GB...)")
    return region


def addresses_of(args: argparse.Namespace) -> list[str]:
    """The addresses given and those of `--file` (one per line, blank lines skipped)."""
    found = list(args.addresses)
    if args.file:
        try:
            found += [line.strip() for line in Path(args.file).read_text().splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--file {args.file}: {exc}") from None
    if not found and not args.contact:
        raise UsageError("no address given (ADDRESS ... or --file)")
    return found


# -- commands ----------------------------------------------------------------------------------
def run(client: PomClient, args: argparse.Namespace) -> int:
    """Runs a `lists`, `contacts`, `imports` or `dnc` command; its exit code."""
    try:
        return _dispatch(client, args)
    except UsageError as exc:
        print(f"pom: {exc}", file=sys.stderr)
        return 2
    except PomError as exc:
        print(f"pom: {reason(exc)}", file=sys.stderr)
        return 1


def _dispatch(client: PomClient, args: argparse.Namespace) -> int:
    if args.cmd == "contacts":
        return _contacts(client, args)
    if args.cmd == "lists" and args.action in LIST_ACTIONS:
        return _lists(client, args)
    if args.cmd == "lists" and args.action == "create":
        return emit(client.create_list(args.name, args.description, args.attribute), args, title="list")
    if args.cmd == "lists" and args.action == "preview":
        out = client.preview_list(args.list, args.expression, args.sample)
        return emit(out, args, title=f"list {args.list}: {out['count']} selected", rows="sample")
    if args.cmd == "lists" and args.action == "import-sql":
        return import_query(client, args)
    if args.cmd == "lists" or (args.cmd == "dnc" and args.action == "import"):
        return import_file(client, args, dnc=args.cmd == "dnc")
    if args.cmd == "imports":
        if args.action == "schedules":
            return _schedules(client, args)
        if args.action == "rejects":
            return _rejects(client, args)
        if args.action == "list":
            return emit(client.imports(args.list, args.dnc_list, args.state), args, IMPORT_COLUMNS, "imports")
        out = client.import_status(args.id) if args.action == "show" else client.import_command(args.id, args.action)
        return emit(out, args, title=f"import {args.id}")
    return _dnc(client, args)


LIST_ACTIONS = ("list", "show", "update", "delete", "contacts")
IMPORT_COLUMNS = ("id", "kind", "list_id", "dnc_list_id", "source", "state", "rows_read", "rows_loaded",
                  "rows_rejected", "created_at", "finished_at")
LIST_COLUMNS = ("id", "name", "description", "attributes", "created_at")
CONTACT_COLUMNS = ("id", "external_id", "first_name", "last_name", "phone1", "phone2", "email", "dnc")


def _lists(client: PomClient, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        return emit(client.lists(args.name), args, LIST_COLUMNS, "contact lists")
    if action == "show":
        return emit(client.contact_list(args.list), args, title=f"list {args.list}")
    if action == "update":
        changes = {k: v for k, v in (("name", args.name), ("description", args.description)) if v is not None}
        if not changes:
            raise UsageError("nothing to change (--name, --description)")
        return emit(client.update_list(args.list, **changes), args, title=f"list {args.list}")
    if action == "delete":
        client.delete_list(args.list)
        return said(f"list {args.list} deleted with its contacts")
    if not 1 <= args.limit <= 1000 or args.after < 0:
        raise UsageError("--limit from 1 to 1000, --after 0 or more")
    return emit(client.list_contacts(args.list, args.after, args.limit), args, CONTACT_COLUMNS,
                f"contacts of list {args.list}")


def _contacts(client: PomClient, args: argparse.Namespace) -> int:
    if args.action == "show":
        return emit(client.contact(args.id), args, title=f"contact {args.id}")
    client.delete_contact(args.id)
    return said(f"contact {args.id} deleted")


def _schedules(client: PomClient, args: argparse.Namespace) -> int:
    action = args.schedule_action
    if action == "list":
        return emit(client.import_schedules(), args, title="import schedules")
    if action == "show":
        return emit(client.import_schedule(args.id), args, title=f"import schedule {args.id}")
    if action == "delete":
        client.delete_import_schedule(args.id)
        return said(f"import schedule {args.id} deleted")
    if action == "create":
        return emit(client.create_import_schedule(_json_file(args.spec, "schedule")), args, title="import schedule")
    return emit(client.update_import_schedule(args.id, _json_file(args.spec, "schedule")), args,
                title=f"import schedule {args.id}")


def import_query(client: PomClient, args: argparse.Namespace) -> int:
    """Starts an import of a query's rows, then follows it like a file's."""
    options = {"mapping": _mapping(args.map) or None, "region": _region(args.region),
               "dedupe_key": args.dedupe_key, "policy": args.policy}
    started = client.start_query_import(args.list, _json_file(args.source, "source"),
                                        idempotency_key=args.idempotency_key, **options)
    if args.no_wait:
        return emit(started, args, title="import")
    return _follow(client, started["id"], args, dnc=False)


def _dnc(client: PomClient, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        return emit(client.dnc_lists(args.name), args, title="DNC lists")
    if action == "show":
        return emit(client.dnc_list(args.list), args, title=f"DNC list {args.list}")
    if action == "create":
        return emit(client.create_dnc_list(args.name, args.description, args.all_campaigns), args, title="DNC list")
    if action == "delete":
        client.delete_dnc_list(args.list)
        return said(f"DNC list {args.list} deleted")
    if action in ("add", "remove"):
        return _change(client, args)
    if action == "entries":
        return emit(client.dnc_entries(args.list, args.after, args.limit), args, rows="entries")
    if action == "lookup":
        if len(args.addresses) > BATCH:
            raise UsageError(f"at most {BATCH} addresses per lookup")
        return emit(client.lookup_dnc(args.addresses, args.campaign, _region(args.region)), args, rows="results")
    if action == "attach":
        return emit(client.attach_dnc(args.campaign, args.list), args)
    if action == "detach":
        client.detach_dnc(args.campaign, args.list)
        return said(f"DNC list {args.list} detached from campaign {args.campaign}")
    return emit(client.campaign_dnc_lists(args.campaign), args, title=f"DNC lists of campaign {args.campaign}")


def _change(client: PomClient, args: argparse.Namespace) -> int:
    """Adds or removes in batches of BATCH; a refused batch stops here (the earlier ones stay)."""
    addresses, region = addresses_of(args), _region(args.region)
    call = client.add_dnc if args.action == "add" else client.remove_dnc
    totals: dict[str, int] = {}
    batches = [addresses[i:i + BATCH] for i in range(0, len(addresses), BATCH)] or [[]]
    for n, batch in enumerate(batches):
        try:
            out = call(args.list, batch, args.contact if n == 0 else [], region)
        except PomError as exc:
            done = n * BATCH
            raise PomError(exc.status, {"errors": [], "detail": f"batch {n + 1} of {len(batches)} refused "
                                        f"(addresses {done + 1}…{done + len(batch)}; {done} applied before): "
                                        f"{reason(exc)}"}) from None
        for key in ("added", "already", "removed"):
            if key in out:
                totals[key] = totals.get(key, 0) + out[key]
    return emit({"list_id": args.list, **totals}, args)


def _rejects(client: PomClient, args: argparse.Namespace) -> int:
    """Every page of the rejected rows (the first `--limit` only if given), read as JSON: to a
    file the CSV (written as the gateway writes it) or the JSON; else the CSV text, or a table
    (the JSON with --json)."""
    from pom_actors.core.imports.rows import rejects_csv

    rows: list[dict] = []
    after = None
    while True:
        page = client.import_rejects(args.id, limit=min(args.limit, REJECTS_PAGE) if args.limit else None, after=after)
        rows += page["rejects"]
        after = page.get("next")
        if after is None or (args.limit and len(rows) >= args.limit):
            break
    rows = rows[:args.limit] if args.limit else rows
    out = rejects_csv(rows) if args.csv else {"import_id": args.id, "rejects": rows}
    if args.output:
        Path(args.output).write_text(out if args.csv else json.dumps(out, indent=2, default=str) + "\n")
        return said(f"rejects of import {args.id} written to {args.output}")
    if args.csv:
        sys.stdout.write(out)
        return 0
    return emit(out, args, title=f"rejects of import {args.id}", rows="rejects")


def import_file(client: PomClient, args: argparse.Namespace, dnc: bool) -> int:
    """Uploads with a progress bar, then follows the import (`_follow`)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    options = import_options(args)
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  DownloadColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
        upload = bar.add_task(f"upload {Path(args.file).name}", total=None)
        started = client.start_import(args.list, args.file, dnc=dnc, **options, idempotency_key=args.idempotency_key,
                                      progress=lambda sent, total: bar.update(upload, completed=sent, total=total))
        if args.no_wait:
            bar.stop()
            return emit(started, args, title="import")
    return _follow(client, started["id"], args, dnc)


def _follow(client: PomClient, import_id: int, args: argparse.Namespace, dnc: bool) -> int:
    """Follows an import (GET /imports/{id}) with a progress bar until it ends: exit 0 when
    done, 1 with its reason when it failed or was stopped."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        follow = bar.add_task(f"import {import_id}", total=1.0)
        status = client.import_status(import_id)
        try:
            while status["state"] not in ENDED:
                bar.update(follow, completed=status.get("progress", 0.0),
                           description=f"import {import_id} {status['state']}: {status['rows_read']:,} read, "
                                       f"{status['rows_rejected']:,} rejected")
                time.sleep(max(0.05, args.poll))
                status = client.import_status(import_id)
        except KeyboardInterrupt:
            bar.stop()
            print(f"pom: stopped watching; import {import_id} goes on (pom imports show {import_id})",
                  file=sys.stderr)
            return 130
    summary = (f"import {import_id} {status['state']}: {status['rows_read']} read, {status['rows_loaded']} loaded, "
               f"{status['rows_rejected']} rejected, {status['duplicates']} duplicates"
               + ("" if dnc else f", {status['dnc_flagged']} DNC flagged"))
    if status["state"] != "done":
        why = status.get("message") or ("stopped by a command" if status["state"] == "stopped" else "no reason given")
        print(f"pom: {summary}: {why}", file=sys.stderr)
        return 1
    print(summary + (f" (pom imports rejects {import_id})" if status["rows_rejected"] else ""))
    return 0


"""Campaign definitions in the database: contact lists, contacts, DNC, strategies, campaigns, rules.

Writes here are administrative (not the hot path) except `add_contacts`, which uses COPY.
Every function takes an open psycopg connection and leaves transaction control to the caller.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..core.finish import FinishCriteria
from ..core.outbound import OutboundPolicy
from ..core.rules import Rule
from ..core.schedule import Schedule
from ..core.strategy import Strategy, parse_strategy

CONTACT_COLUMNS = ("list_id", "external_id", "first_name", "last_name", "phone1", "phone2", "email",
                   "timezones", "attributes")


class NotFound(LookupError):
    """A named or numbered definition does not exist."""


def create_list(conn: psycopg.Connection, name: str, description: str = "",
                attributes: Sequence[str] = ()) -> int:
    return conn.execute(
        "INSERT INTO contact_lists (name, description, attributes) VALUES (%s, %s, %s) RETURNING id",
        (name, description, Jsonb(sorted(set(attributes))))).fetchone()[0]


def list_attributes(conn: psycopg.Connection, list_id: int) -> list[str]:
    row = conn.execute("SELECT attributes FROM contact_lists WHERE id = %s", (list_id,)).fetchone()
    if not row:
        raise NotFound(f"contact list {list_id} does not exist")
    return row[0]


def add_contacts(conn: psycopg.Connection, list_id: int, contacts: Iterable[Mapping[str, Any]]) -> int:
    """COPY contacts (dicts of CONTACT_COLUMNS minus list_id) into a list; returns the count."""
    n = 0
    with conn.cursor() as cur:
        with cur.copy(f"COPY contacts ({', '.join(CONTACT_COLUMNS)}) FROM STDIN") as copy:
            for c in contacts:
                copy.write_row((list_id, c["external_id"], c.get("first_name", ""), c.get("last_name", ""),
                                c.get("phone1"), c.get("phone2"), c.get("email"),
                                list(c.get("timezones") or []), Jsonb(dict(c.get("attributes") or {}))))
                n += 1
    return n


def existing_external_ids(conn: psycopg.Connection, list_id: int, ids: Sequence[str]) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT external_id FROM contacts WHERE list_id = %s AND external_id = ANY(%s)", (list_id, list(ids)))}


def add_dnc(conn: psycopg.Connection, addresses: Iterable[str] = (), contact_ids: Iterable[int] = (),
            source: str = "manual", list_id: int = 1) -> int:
    """Entries of a DNC list (default: list 1, 'system', which applies to every campaign);
    returns how many were new (store.dnc has the lists)."""
    from .dnc import add_entries
    return add_entries(conn, list_id, list(addresses), list(contact_ids), source)


def save_strategy(conn: psycopg.Connection, document: str | bytes | Mapping[str, Any],
                  attributes: Iterable[str] | None = None,
                  outbound: OutboundPolicy | None = None) -> tuple[int, Strategy]:
    """Validate (raises StrategyError; webhook URLs against `outbound` when given; the agent
    scripts it names must exist) and store as the next version of its name."""
    from .scripts import check_named
    strategy = parse_strategy(document, attributes, outbound)
    check_named(conn, strategy)
    source = document if isinstance(document, str) else (
        document.decode() if isinstance(document, bytes) else "")
    version = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM strategies WHERE name = %s",
                           (strategy.name,)).fetchone()[0]
    body = strategy.model_dump(mode="json", exclude={"version"})
    sid = conn.execute(
        "INSERT INTO strategies (name, version, document, source) VALUES (%s, %s, %s, %s) RETURNING id",
        (strategy.name, version, Jsonb(body), source)).fetchone()[0]
    return sid, strategy.model_copy(update={"version": version})


def load_strategy(conn: psycopg.Connection, strategy_id: int) -> Strategy:
    row = conn.execute("SELECT document, version FROM strategies WHERE id = %s", (strategy_id,)).fetchone()
    if not row:
        raise NotFound(f"strategy {strategy_id} does not exist")
    return parse_strategy({**row[0], "version": row[1]})


def create_campaign(conn: psycopg.Connection, name: str, strategy_id: int, list_id: int | None = None, *,
                    description: str = "", finish: Mapping[str, Any] | None = None,
                    schedule: Mapping[str, Any] | None = None, priority: int = 5,
                    filter_id: int | None = None, zone: str | None = None,
                    lists: Sequence[Mapping[str, Any]] | None = None) -> int:
    """A campaign over one list (`list_id`) or several (`lists`: list_id, priority, sort —
    core/dialling.py; ListsError, NotFound); its finish criteria and schedule are validated
    (pydantic.ValidationError), its filter template (if any) against each list's attributes
    (NotFound, FilterError), its zone (if any) must exist (ZoneError)."""
    from .dialling import check_lists, set_lists
    if (list_id is None) == (lists is None):
        from ..core.dialling import ListsError
        raise ListsError("lists", "give either list_id or lists")
    chosen = check_lists(conn, [{"list_id": list_id}] if lists is None else lists)
    list_id = chosen[0].list_id
    if filter_id is not None:
        from .filters import check_for_list
        for entry in chosen:
            check_for_list(conn, entry.list_id, filter_id)
    if zone is not None:
        from .zones import check_exists
        check_exists(conn, zone)
    finish = FinishCriteria(**(finish or {})).model_dump(mode="json", exclude_none=True,
                                                        exclude_defaults=True)
    schedule = Schedule(**schedule).model_dump(mode="json") if schedule else None
    cid = conn.execute(
        "INSERT INTO campaigns (name, description, strategy_id, list_id, finish, schedule, priority, filter_id, zone) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (name, description, strategy_id, list_id, Jsonb(dict(finish or {})),
         Jsonb(dict(schedule)) if schedule else None, priority, filter_id, zone)).fetchone()[0]
    set_lists(conn, cid, chosen)
    declare_codes(conn, cid, strategy_id)
    return cid


def declare_codes(conn: psycopg.Connection, campaign_id: int, strategy_id: int) -> None:
    """The custom codes the strategy declares, made the campaign's (a code it has stays as it is)."""
    book = load_strategy(conn, strategy_id).codebook()
    for code in (book[name] for name in book.names() if not book[name].system):
        conn.execute(
            "INSERT INTO completion_codes (campaign_id, name, final, contact_uncallable, address_uncallable, "
            "human_contact, counts_as_abandon) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (campaign_id, name) DO NOTHING",
            (campaign_id, code.name, code.final, code.contact_uncallable, code.address_uncallable,
             code.human_contact, code.counts_as_abandon))


def campaign(conn: psycopg.Connection, ref: int | str) -> dict[str, Any]:
    column = "id" if isinstance(ref, int) else "name"
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT * FROM campaigns WHERE {column} = %s", (ref,)).fetchone()
    if not row:
        raise NotFound(f"campaign {ref!r} does not exist")
    return row


def has_campaigns(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT 1 FROM campaigns LIMIT 1").fetchone() is not None


def campaigns(conn: psycopg.Connection, *, after: int = 0, limit: int | None = None,
              enabled: bool | None = None) -> list[dict[str, Any]]:
    """Campaigns by id, with an id above `after` (and `enabled` if given); at most `limit`."""
    where, params = "id > %s", [after]
    if enabled is not None:
        where, params = where + " AND enabled = %s", params + [enabled]
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT * FROM campaigns WHERE {where} ORDER BY id LIMIT %s", (*params, limit)).fetchall()


def add_rule(conn: psycopg.Connection, rule: Rule) -> int:
    return conn.execute("INSERT INTO rules (campaign_id, kind, enabled, params) VALUES (%s, %s, %s, %s) "
                        "RETURNING id", (rule.campaign_id, str(rule.kind), rule.enabled,
                                         Jsonb(rule.params))).fetchone()[0]


def rules(conn: psycopg.Connection) -> list[Rule]:
    rows = conn.execute("SELECT campaign_id, kind, enabled, params FROM rules ORDER BY id").fetchall()
    return [Rule(campaign_id=c, kind=k, enabled=e, params=p) for c, k, e, p in rows]


class CampaignInUse(RuntimeError):
    """A campaign with a job not ended cannot be deleted (stop the job first)."""


class CampaignDisabled(RuntimeError):
    """A disabled campaign takes no new job (enable it first)."""


CAMPAIGN_CHANGES = frozenset({"description", "priority", "enabled", "schedule", "finish", "lists", "strategy_id"})


def update_campaign(conn: psycopg.Connection, campaign_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Change some of CAMPAIGN_CHANGES (finish and schedule validated as at creation; a
    schedule of None removes it); the campaign as it now is. Its running jobs see a new
    priority at the director's next tick; a disabled campaign is skipped by its schedule. New
    `lists` (checked as at creation, against its filter template too) apply to jobs created
    after the change, and so does a new `strategy_id` (another version, or another strategy:
    the custom codes it declares are added as at creation; a job keeps the version it began with)."""
    values = {k: v for k, v in changes.items() if k in CAMPAIGN_CHANGES}
    if "strategy_id" in values:
        campaign(conn, campaign_id)
        declare_codes(conn, campaign_id, values["strategy_id"])
    if "lists" in values:
        from .dialling import check_lists, set_lists
        filter_id = campaign(conn, campaign_id)["filter_id"]
        lists = check_lists(conn, values.pop("lists"))
        if filter_id is not None:
            from .filters import check_for_list
            for entry in lists:
                check_for_list(conn, entry.list_id, filter_id)
        set_lists(conn, campaign_id, lists)
    if "finish" in values:
        values["finish"] = Jsonb(FinishCriteria(**(values["finish"] or {})).model_dump(
            mode="json", exclude_none=True, exclude_defaults=True))
    if "schedule" in values:
        values["schedule"] = Jsonb(Schedule(**values["schedule"]).model_dump(mode="json")) \
            if values["schedule"] else None
    if values:
        assignments = ", ".join(f"{column} = %({column})s" for column in values)
        found = conn.execute(f"UPDATE campaigns SET {assignments} WHERE id = %(id)s RETURNING id",
                             {**values, "id": campaign_id}).fetchone()
        if found is None:
            raise NotFound(f"campaign {campaign_id} does not exist")
    return campaign(conn, campaign_id)


def delete_campaign(conn: psycopg.Connection, campaign_id: int) -> None:
    """Delete a campaign whose jobs have all ended (CampaignInUse otherwise), with its jobs'
    work items and leases, its jobs, rules and custom codes (what cascades goes with it: DNC
    attachments, pacing counters). The ledger (`attempts`) keeps their rows for the reports.
    The campaign row is locked first: a job created meanwhile either lands before (and is
    seen here) or fails on the missing campaign."""
    from ..core.lifecycle import TERMINAL

    with conn.transaction():
        if conn.execute("SELECT 1 FROM campaigns WHERE id = %s FOR UPDATE", (campaign_id,)).fetchone() is None:
            raise NotFound(f"campaign {campaign_id} does not exist")
        live = conn.execute("SELECT id, state FROM jobs WHERE campaign_id = %s AND NOT state = ANY(%s) ORDER BY id",
                            (campaign_id, [str(s) for s in TERMINAL])).fetchall()
        if live:
            raise CampaignInUse(f"campaign {campaign_id} has jobs not ended ("
                                + ", ".join(f"job {j} {s}" for j, s in live[:10])
                                + "): stop them first, or disable the campaign")
        jobs = [r[0] for r in conn.execute("SELECT id FROM jobs WHERE campaign_id = %s", (campaign_id,))]
        if jobs:
            conn.execute("UPDATE agents SET job_id = NULL WHERE job_id = ANY(%s)", (jobs,))
            for table in ("work_items", "shard_leases"):
                conn.execute(f"DELETE FROM {table} WHERE job_id = ANY(%s)", (jobs,))
            conn.execute("DELETE FROM jobs WHERE id = ANY(%s)", (jobs,))
        for table in ("rules", "completion_codes"):
            conn.execute(f"DELETE FROM {table} WHERE campaign_id = %s", (campaign_id,))
        conn.execute("DELETE FROM campaigns WHERE id = %s", (campaign_id,))


# -- the rule editor ----------------------------------------------------------------------------
RULE_COLUMNS = "id, campaign_id, kind, enabled, params"


def rule_rows(conn: psycopg.Connection, campaign_id: int | None = None, system: bool = False, *,
              after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    """The rules by id: all, a campaign's, or (`system`) the system's; with an id above
    `after`, at most `limit`."""
    where, params = "id > %s", [after]
    if system:
        where += " AND campaign_id IS NULL"
    elif campaign_id is not None:
        where, params = where + " AND campaign_id = %s", params + [campaign_id]
    return conn.cursor(row_factory=dict_row).execute(
        f"SELECT {RULE_COLUMNS} FROM rules WHERE {where} ORDER BY id LIMIT %s", (*params, limit)).fetchall()


def rule_row(conn: psycopg.Connection, rule_id: int) -> dict[str, Any]:
    row = conn.cursor(row_factory=dict_row).execute(f"SELECT {RULE_COLUMNS} FROM rules WHERE id = %s",
                                                    (rule_id,)).fetchone()
    if row is None:
        raise NotFound(f"rule {rule_id} does not exist")
    return row


def save_rule(conn: psycopg.Connection, rule: Rule, rule_id: int | None = None) -> dict[str, Any]:
    """Insert `rule` (validated by core.rules.Rule), or replace rule `rule_id` with it; its
    campaign must exist (NotFound). The rule engine reads the rules again within
    rule_engine.RELOAD_S."""
    if rule.campaign_id is not None:
        campaign(conn, rule.campaign_id)
    values = (rule.campaign_id, str(rule.kind), rule.enabled, Jsonb(rule.params))
    if rule_id is None:
        rule_id = add_rule(conn, rule)
    elif conn.execute("UPDATE rules SET campaign_id = %s, kind = %s, enabled = %s, params = %s WHERE id = %s "
                      "RETURNING id", (*values, rule_id)).fetchone() is None:
        raise NotFound(f"rule {rule_id} does not exist")
    return rule_row(conn, rule_id)


def delete_rule(conn: psycopg.Connection, rule_id: int) -> None:
    if conn.execute("DELETE FROM rules WHERE id = %s RETURNING id", (rule_id,)).fetchone() is None:
        raise NotFound(f"rule {rule_id} does not exist")

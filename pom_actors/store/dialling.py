"""A campaign's lists and a job's dialling order in SQL (the decisions: core/dialling.py).

A job's work items are written list by list, each item ranked by its list's priority and its
place in the list's sort order; the sort keys become SQL through the filter language's field
resolution (store/filters.value_sql): identifiers from its whitelist, attribute names as
parameters. The claim that reads the ranks and the dialling order is store/work.py's.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..core import dialling as D
from ..core.lifecycle import TERMINAL, JobState
from .catalog import NotFound
from .filters import value_sql

MAX_PRIORITY_CONTACTS = 10_000            # contacts per request to add as priority contacts


class JobEnded(RuntimeError):
    """An ended job's dialling order and contacts no longer change."""


def check_lists(conn: psycopg.Connection, value: Any, field: str = "lists") -> tuple[D.CampaignList, ...]:
    """`value` as a campaign's lists: each must exist (NotFound) and every attribute a sort
    order reads must be one its list declares (ListsError)."""
    ids = [v.get("list_id") for v in value if isinstance(v, dict)] if isinstance(value, (list, tuple)) else []
    ids = [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]
    declared = dict(conn.execute("SELECT id, attributes FROM contact_lists WHERE id = ANY(%s)",
                                 ([i for i in ids if 0 < i < 2**31],)).fetchall())
    lists = D.campaign_lists(value, field, declared)
    missing = [e.list_id for e in lists if e.list_id not in declared]
    if missing:
        raise NotFound(f"contact list {missing[0]} does not exist")
    return lists


def set_lists(conn: psycopg.Connection, campaign_id: int, lists: Sequence[D.CampaignList]) -> None:
    """Replace a campaign's lists; its `list_id` becomes the first (the highest priority).
    Jobs already created keep theirs."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM campaign_lists WHERE campaign_id = %s", (campaign_id,))
        cur.executemany("INSERT INTO campaign_lists (campaign_id, list_id, priority, sort) VALUES (%s, %s, %s, %s)",
                        [(campaign_id, e.list_id, e.priority, Jsonb([k.as_dict() for k in e.sort])) for e in lists])
        cur.execute("UPDATE campaigns SET list_id = %s WHERE id = %s", (lists[0].list_id, campaign_id))


def lists_of(conn: psycopg.Connection, campaign_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Each campaign's lists as the API shows them, the highest priority first."""
    out: dict[int, list[dict[str, Any]]] = {c: [] for c in campaign_ids}
    for cid, list_id, priority, sort in conn.execute(
            "SELECT campaign_id, list_id, priority, sort FROM campaign_lists WHERE campaign_id = ANY(%s) "
            "ORDER BY campaign_id, priority DESC, list_id", (list(out),)):
        out[cid].append({"list_id": list_id, "priority": priority, "sort": sort})
    return out


def _parsed(rows: Iterable[dict[str, Any]]) -> list[D.CampaignList]:
    """Lists as stored (checked when they were saved)."""
    return [D.campaign_list(r, "lists") for r in rows]


def order_sql(keys: Sequence[D.SortKey], alias: str = "c") -> tuple[str, list[Any]]:
    """ORDER BY terms (without the words) for a list's sort order, then the contact id; values
    not of a key's type sort last. Text compares by code point, as filters do."""
    terms, params = [], []
    for key in keys:
        value, p = value_sql(key.field, key.type, alias)
        collate = ' COLLATE "C"' if key.type == "text" else ""
        terms.append(f"({value}){collate} {'DESC' if key.descending else 'ASC'} NULLS LAST")
        params += p
    return ", ".join([*terms, f"{alias}.id"]), params


def campaign_lists(conn: psycopg.Connection, campaign_id: int) -> list[D.CampaignList]:
    """A campaign's lists, the highest priority first."""
    return _parsed(lists_of(conn, [campaign_id])[campaign_id])


def create_work_items(conn: psycopg.Connection, job_id: int, lists: Sequence[D.CampaignList], shards: int,
                      now: datetime, handler: str) -> None:
    """The job's work items over every contact of `lists`, ranked."""
    for entry in lists:
        order, params = order_sql(entry.sort)
        conn.execute(
            "INSERT INTO work_items (job_id, contact_id, shard, state, next_at, handler, rank) "
            f"SELECT %s, c.id, (c.id %% %s)::int, 'ready', %s, %s, %s + row_number() OVER (ORDER BY {order}) "
            "FROM contacts c WHERE c.list_id = %s",
            [job_id, shards, now, handler, D.rank_base(entry.priority), *params, entry.list_id])


def _open_job(conn: psycopg.Connection, job_id: int) -> dict[str, Any]:
    """The job's row, locked, if it has not ended (NotFound, JobEnded)."""
    row = conn.execute("SELECT state, shards, strategy_id, lists FROM jobs WHERE id = %s FOR UPDATE",
                       (job_id,)).fetchone()
    if not row:
        raise NotFound(f"job {job_id} does not exist")
    state, shards, strategy_id, lists = row
    if JobState(state) in TERMINAL:
        raise JobEnded(f"job {job_id} has ended ({state})")
    return {"shards": shards, "strategy_id": strategy_id, "lists": _parsed(lists)}


def set_dialling_order(conn: psycopg.Connection, job_id: int, order: Sequence[str]) -> list[str]:
    """Change the dialling order of a job that has not ended; its managers read it at their
    next lease renewal and claim by it."""
    order = list(D.dialling_order(order))
    _open_job(conn, job_id)
    conn.execute("UPDATE jobs SET dialling_order = %s WHERE id = %s", (Jsonb(order), job_id))
    return order


def add_priority_contacts(conn: psycopg.Connection, job_id: int, contact_ids: Sequence[int],
                          now: datetime) -> dict[str, Any]:
    """Make contacts of the job's lists priority contacts of the job, due at `now`: a contact
    the job has not attempted yet is raised, one the job does not hold yet (added to its list
    after the job was created) gets its work item. A contact attempted already, or of another
    list, is left as it is and reported under `skipped` with the reason."""
    ids = list(dict.fromkeys(contact_ids))
    if not 1 <= len(ids) <= MAX_PRIORITY_CONTACTS:
        raise D.ListsError("contact_ids", f"names 1 to {MAX_PRIORITY_CONTACTS} contacts")
    job = _open_job(conn, job_id)
    bases = {e.list_id: D.rank_base(e.priority) for e in job["lists"]}
    initial = conn.execute("SELECT document->>'initial' FROM strategies WHERE id = %s",
                           (job["strategy_id"],)).fetchone()[0]
    # FOR SHARE: a contact being deleted (store.contacts.delete_contact locks it first) is
    # either gone here or waits for this item, which its delete then finds and closes.
    found = dict(conn.execute("SELECT id, list_id FROM contacts WHERE id = ANY(%s) ORDER BY id FOR SHARE",
                              (ids,)).fetchall())
    held = dict(conn.execute("SELECT contact_id, state FROM work_items WHERE job_id = %s AND contact_id = ANY(%s)",
                             (job_id, ids)).fetchall())
    skipped, raise_, add = [], [], []
    for cid in ids:
        if cid not in found:
            skipped.append({"contact_id": cid, "reason": "no such contact"})
        elif found[cid] not in bases:
            skipped.append({"contact_id": cid, "reason": f"of list {found[cid]}, not one of the job's"})
        elif cid not in held:
            add.append(cid)
        elif held[cid] == "ready":
            raise_.append(cid)
        else:
            skipped.append({"contact_id": cid, "reason": f"attempted already ({held[cid]})"})
    raised = conn.execute("UPDATE work_items SET priority = true, next_at = least(next_at, %s) "
                          "WHERE job_id = %s AND contact_id = ANY(%s) AND state = 'ready'",
                          (now, job_id, raise_)).rowcount if raise_ else 0
    added = 0
    if add:
        added = conn.execute(
            "INSERT INTO work_items (job_id, contact_id, shard, state, next_at, handler, priority, rank) "
            "SELECT %s, c.id, (c.id %% %s)::int, 'ready', %s, %s, true, (%s::jsonb ->> c.list_id::text)::bigint "
            "FROM contacts c WHERE c.id = ANY(%s)",
            (job_id, job["shards"], now, initial, Jsonb({str(k): v for k, v in bases.items()}), add)).rowcount
    return {"job_id": job_id, "added": added, "raised": raised, "skipped": skipped}

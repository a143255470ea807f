"""Contact lists read, changed and deleted: a page of lists (no counts: counting every list of a
page would read every contact), one list with its contact count, a page of its contacts, its
name and description changed, the list deleted with its contacts while nothing uses it. Lists
are made by catalog.create_list."""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from .catalog import NotFound
from .contacts import CONTACT_COLUMNS

COLUMNS = "l.id, l.name, l.description, l.attributes, l.created_at"


def rows(conn: psycopg.Connection, *, name: str | None = None, after: int = 0,
         limit: int | None = None) -> list[dict[str, Any]]:
    """Lists by id above `after`, at most `limit`; only the one named `name` if given."""
    return conn.cursor(row_factory=dict_row).execute(
        f"SELECT {COLUMNS} FROM contact_lists l WHERE l.id > %s AND (%s::text IS NULL OR l.name = %s) "
        "ORDER BY l.id LIMIT %s", (after, name, name, limit)).fetchall()


def row(conn: psycopg.Connection, list_id: int) -> dict[str, Any]:
    found = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {COLUMNS}, (SELECT count(*) FROM contacts c WHERE c.list_id = l.id) AS contacts "
        "FROM contact_lists l WHERE l.id = %s", (list_id,)).fetchone()
    if found is None:
        raise NotFound(f"contact list {list_id} does not exist")
    return found


class ListInUse(RuntimeError):
    """A list something still dials or fills cannot be deleted (409)."""


DELETE_BATCH = 10_000           # contacts per transaction when a list goes


def update(conn: psycopg.Connection, list_id: int, **changes: str) -> dict[str, Any]:
    """Set the `changes` given (name, description); a name taken is a UniqueViolation (409)."""
    sets = [f"{name} = %s" for name in changes if name in ("name", "description")]
    with conn.transaction():
        if sets and conn.execute(f"UPDATE contact_lists SET {', '.join(sets)} WHERE id = %s",
                                 (*changes.values(), list_id)).rowcount == 0:
            raise NotFound(f"contact list {list_id} does not exist")
        return row(conn, list_id)


def contacts(conn: psycopg.Connection, list_id: int, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    """A page of the list's contacts by id (NotFound for no such list)."""
    if conn.execute("SELECT 1 FROM contact_lists WHERE id = %s", (list_id,)).fetchone() is None:
        raise NotFound(f"contact list {list_id} does not exist")
    return conn.cursor(row_factory=dict_row).execute(
        f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE list_id = %s AND id > %s ORDER BY id LIMIT %s",
        (list_id, after, limit)).fetchall()


def _users(conn: psycopg.Connection, list_id: int) -> str | None:
    """What still uses the list (None: nothing): campaigns dialling it, jobs not ended that
    hold it, imports not finished into it, import schedules filling it; ten of each named."""
    found = [
        ("campaign(s)", "SELECT DISTINCT c.name FROM campaigns c LEFT JOIN campaign_lists cl ON cl.campaign_id = c.id "
                        "WHERE c.list_id = %(l)s OR cl.list_id = %(l)s ORDER BY 1 LIMIT 10"),
        ("job(s) not ended", "SELECT id FROM jobs WHERE ended_at IS NULL AND "
                             "lists @> jsonb_build_array(jsonb_build_object('list_id', %(l)s::int)) ORDER BY id LIMIT 10"),
        ("import(s) not finished", "SELECT id FROM import_jobs WHERE list_id = %(l)s "
                                   "AND state IN ('queued', 'running', 'paused') ORDER BY id LIMIT 10"),
        ("import schedule(s)", "SELECT name FROM import_schedules WHERE list_id = %(l)s ORDER BY id LIMIT 10"),
    ]
    said = []
    for what, sql in found:
        names = [str(r[0]) for r in conn.execute(sql, {"l": list_id})]
        if names:
            said.append(f"{what} {', '.join(names)}")
    return "; ".join(said) or None


def _hold(conn: psycopg.Connection, list_id: int) -> None:
    """Lock the list (a campaign, import or upload naming it waits) and refuse it in use."""
    if conn.execute("SELECT id FROM contact_lists WHERE id = %s FOR UPDATE", (list_id,)).fetchone() is None:
        raise NotFound(f"contact list {list_id} does not exist")
    if (users := _users(conn, list_id)) is not None:
        raise ListInUse(f"contact list {list_id} is used by {users}")


def delete(conn: psycopg.Connection, list_id: int, batch: int = DELETE_BATCH) -> int:
    """Delete the list, its contacts and its finished imports; the number of contacts deleted.
    ListInUse (409) while a campaign dials it, a job not ended holds it, an import into it
    has not finished or an import schedule fills it.

    A list may hold a million contacts: they go `batch` at a time (walking the unique
    (list_id, external_id) index, so a batch never rescans what the last one deleted), each in
    its own short transaction (on an autocommit connection, as the gateway's are) that locks the
    list and checks again that nothing uses it. One statement over them all holds the list's
    lock and every deleted row's for as long as the whole list takes (0.45 s for a million here,
    growing with the list, one transaction for vacuum and replication to wait on); a batch holds
    them ~10 ms, so an upload to the list waits for one batch at most (bench/list_delete.py).
    Should something start to use the list between two batches, the next refuses (409) and the
    contacts deleted so far stay deleted. The ledger and the work items of ended jobs keep the
    contact ids, as history; DNC entries (opt-outs) stay."""
    deleted, last = 0, ""
    while True:
        with conn.transaction():
            _hold(conn, list_id)
            # the batch's ids as an array: deleted through the primary key (a join would hash the table)
            count, last_id = conn.execute(
                "WITH gone AS (DELETE FROM contacts WHERE id = ANY(ARRAY(SELECT id FROM contacts WHERE list_id = %s "
                "AND external_id > %s ORDER BY external_id LIMIT %s)) RETURNING external_id) "
                "SELECT count(*), max(external_id) FROM gone", (list_id, last, batch)).fetchone()
            deleted += count
            if count < batch:
                # the last batch: contacts an upload added behind the walk go too, then the list
                deleted += conn.execute("DELETE FROM contacts WHERE list_id = %s", (list_id,)).rowcount
                conn.execute("DELETE FROM import_jobs WHERE list_id = %s", (list_id,))
                conn.execute("DELETE FROM contact_lists WHERE id = %s", (list_id,))
                return deleted
            last = last_id

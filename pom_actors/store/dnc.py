"""DNC lists in the database: the lists, their entries, which campaigns they apply to, the
rule engine's lookup per batch, and the merge of a DNC import's chunks.

A list applies to every campaign (`all_campaigns`, like list 1, 'system') or to the campaigns
it is attached to. The rule engine reads entries and attachments in one statement per batch
(`hits`), with no cache: an entry added or a list attached is honoured from the next batch
checked, by every manager of every running job.

A DNC import in `replace` mode never empties the list while it runs: each chunk marks the
entries it carries (`source = 'import:<id>'`), and only when the last chunk is in does
`replace_rest` delete, in the transaction that finishes the import, the entries that the file
did not carry and that were there before the import began.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .catalog import NotFound
from .imports import Merged, record_chunk

SYSTEM_LIST = 1
MODES = ("append", "replace")


class DncConflict(ValueError):
    """A change the DNC lists refuse (deleting the system list...)."""


def _json(values: Iterable[Any]) -> str:
    return orjson.dumps(list(values)).decode()


# -- lists -------------------------------------------------------------------------------------
_LIST = ("SELECT l.id, l.name, l.description, l.all_campaigns, l.created_at, "
         "(SELECT count(*) FROM dnc_entries e WHERE e.list_id = l.id) AS entries, "
         "(SELECT coalesce(array_agg(a.campaign_id ORDER BY a.campaign_id), '{}') FROM campaign_dnc_lists a "
         "WHERE a.dnc_list_id = l.id) AS campaigns FROM dnc_lists l")


def create_list(conn: psycopg.Connection, name: str, description: str = "", all_campaigns: bool = False) -> dict:
    list_id = conn.execute("INSERT INTO dnc_lists (name, description, all_campaigns) VALUES (%s, %s, %s) "
                           "RETURNING id", (name, description, all_campaigns)).fetchone()[0]
    return get_list(conn, list_id)


def lists(conn: psycopg.Connection, *, name: str | None = None, after: int = 0, limit: int | None = None) -> list[dict]:
    """DNC lists by id above `after`, at most `limit`; only the one named `name` if given."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_LIST + " WHERE l.id > %s AND (%s::text IS NULL OR l.name = %s) ORDER BY l.id LIMIT %s",
                           (after, name, name, limit)).fetchall()


def get_list(conn: psycopg.Connection, list_id: int) -> dict:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_LIST + " WHERE l.id = %s", (list_id,)).fetchone()
    if row is None:
        raise NotFound(f"DNC list {list_id} does not exist")
    return row


def delete_list(conn: psycopg.Connection, list_id: int) -> None:
    """Deletes a list with its entries, attachments and imports (never the system list)."""
    if list_id == SYSTEM_LIST:
        raise DncConflict("the system DNC list cannot be deleted")
    if conn.execute("DELETE FROM dnc_lists WHERE id = %s", (list_id,)).rowcount == 0:
        raise NotFound(f"DNC list {list_id} does not exist")


# -- entries -----------------------------------------------------------------------------------
def add_entries(conn: psycopg.Connection, list_id: int, addresses: Sequence[str] = (),
                contact_ids: Sequence[int] = (), source: str = "manual") -> int:
    """Adds what the list does not hold yet; returns how many were new."""
    get_list(conn, list_id)
    added = conn.execute(
        "INSERT INTO dnc_entries (list_id, address, source) SELECT %s, a, %s FROM "
        "(SELECT DISTINCT jsonb_array_elements_text(%s::jsonb) AS a) s ORDER BY a "
        "ON CONFLICT (list_id, address) DO NOTHING", (list_id, source, _json(addresses))).rowcount
    added += conn.execute(
        "INSERT INTO dnc_entries (list_id, contact_id, source) SELECT %s, c, %s FROM "
        "(SELECT DISTINCT jsonb_array_elements_text(%s::jsonb)::bigint AS c) s ORDER BY c "
        "ON CONFLICT (list_id, contact_id) DO NOTHING", (list_id, source, _json(contact_ids))).rowcount
    return added


def remove_entries(conn: psycopg.Connection, list_id: int, addresses: Sequence[str] = (),
                   contact_ids: Sequence[int] = ()) -> int:
    get_list(conn, list_id)
    return conn.execute(
        "DELETE FROM dnc_entries WHERE list_id = %s AND (address IN "
        "(SELECT jsonb_array_elements_text(%s::jsonb)) OR contact_id IN "
        "(SELECT jsonb_array_elements_text(%s::jsonb)::bigint))",
        (list_id, _json(addresses), _json(contact_ids))).rowcount


def entries(conn: psycopg.Connection, list_id: int, after: int = 0, limit: int = 1000) -> list[dict]:
    """A page of a list's entries in id order (`after`: the last id of the previous page)."""
    get_list(conn, list_id)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT id, address, contact_id, source, created_at FROM dnc_entries "
                           "WHERE list_id = %s AND id > %s ORDER BY id LIMIT %s",
                           (list_id, after, limit)).fetchall()


def lookup(conn: psycopg.Connection, addresses: Sequence[str], campaign_id: int | None = None) -> dict[str, list[dict]]:
    """For each address on some DNC list: the lists ({id, name}) holding it — with
    `campaign_id`, only the lists that apply to that campaign."""
    if campaign_id is not None and conn.execute("SELECT 1 FROM campaigns WHERE id = %s",
                                                (campaign_id,)).fetchone() is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    rows = conn.execute(
        "SELECT e.address, l.id, l.name FROM dnc_entries e JOIN dnc_lists l ON l.id = e.list_id "
        "WHERE e.address IN (SELECT jsonb_array_elements_text(%s::jsonb)) AND (%s::int IS NULL OR "
        "l.all_campaigns OR EXISTS (SELECT 1 FROM campaign_dnc_lists a WHERE a.campaign_id = %s "
        "AND a.dnc_list_id = l.id)) ORDER BY e.address, l.id",
        (_json(addresses), campaign_id, campaign_id)).fetchall()
    out: dict[str, list[dict]] = {}
    for address, list_id, name in rows:
        out.setdefault(address, []).append({"id": list_id, "name": name})
    return out


# -- campaigns ---------------------------------------------------------------------------------
def attach(conn: psycopg.Connection, campaign_id: int, list_id: int) -> bool:
    """The list applies to the campaign from the next batch its managers claim; False if it
    already did."""
    get_list(conn, list_id)
    if conn.execute("SELECT 1 FROM campaigns WHERE id = %s", (campaign_id,)).fetchone() is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    return conn.execute("INSERT INTO campaign_dnc_lists (campaign_id, dnc_list_id) VALUES (%s, %s) "
                        "ON CONFLICT DO NOTHING", (campaign_id, list_id)).rowcount == 1


def detach(conn: psycopg.Connection, campaign_id: int, list_id: int) -> None:
    if conn.execute("DELETE FROM campaign_dnc_lists WHERE campaign_id = %s AND dnc_list_id = %s",
                    (campaign_id, list_id)).rowcount == 0:
        raise NotFound(f"DNC list {list_id} is not attached to campaign {campaign_id}")


def campaign_lists(conn: psycopg.Connection, campaign_id: int, *, after: int = 0,
                   limit: int | None = None) -> list[dict]:
    """The lists that apply to a campaign: every all-campaigns list and those attached, by id
    above `after`, at most `limit`."""
    if conn.execute("SELECT 1 FROM campaigns WHERE id = %s", (campaign_id,)).fetchone() is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT l.id, l.name, l.all_campaigns, a.campaign_id IS NOT NULL AS attached FROM dnc_lists l "
            "LEFT JOIN campaign_dnc_lists a ON a.dnc_list_id = l.id AND a.campaign_id = %s "
            "WHERE (l.all_campaigns OR a.campaign_id IS NOT NULL) AND l.id > %s ORDER BY l.id LIMIT %s",
            (campaign_id, after, limit)).fetchall()


# -- the rule engine ---------------------------------------------------------------------------
_APPLIES = ("JOIN dnc_lists l ON l.id = e.list_id JOIN (SELECT DISTINCT jsonb_array_elements_text(%s::jsonb)::int "
            "AS id) c ON l.all_campaigns OR EXISTS (SELECT 1 FROM campaign_dnc_lists a "
            "WHERE a.campaign_id = c.id AND a.dnc_list_id = l.id)")


def hits(conn: psycopg.Connection, campaign_ids: Iterable[int], addresses: Iterable[str],
         contact_ids: Iterable[int]) -> tuple[dict[tuple[int, str], str], dict[tuple[int, int], str]]:
    """The DNC entries a batch meets, per campaign: {(campaign, address): list name} and
    {(campaign, contact): list name} (the first list by id when several hold it). The keys
    travel as JSON arrays and meet the entries' indexes through semi-joins."""
    campaigns = _json(campaign_ids)
    by_address = {(c, a): n for c, a, n in conn.execute(
        f"SELECT DISTINCT ON (c.id, e.address) c.id, e.address, l.name FROM dnc_entries e {_APPLIES} "
        "WHERE e.address IN (SELECT jsonb_array_elements_text(%s::jsonb)) ORDER BY c.id, e.address, l.id",
        (campaigns, _json(addresses)))}
    by_contact = {(c, k): n for c, k, n in conn.execute(
        f"SELECT DISTINCT ON (c.id, e.contact_id) c.id, e.contact_id, l.name FROM dnc_entries e {_APPLIES} "
        "WHERE e.contact_id IN (SELECT jsonb_array_elements_text(%s::jsonb)::bigint) "
        "ORDER BY c.id, e.contact_id, l.id", (campaigns, _json(contact_ids)))}
    return by_address, by_contact


# -- DNC imports -------------------------------------------------------------------------------
def create_import(conn: psycopg.Connection, list_id: int, source: str, path: str | None,
                  options: Mapping[str, Any]) -> int:
    get_list(conn, list_id)
    return conn.execute(
        "INSERT INTO import_jobs (dnc_list_id, kind, source, state, path, options) "
        "VALUES (%s, 'dnc', %s, 'queued', %s, %s) RETURNING id",
        (list_id, source, path, Jsonb(dict(options)))).fetchone()[0]


def merge_entries(conn: psycopg.Connection, list_id: int, import_id: int, entries: Sequence[Mapping[str, Any]]) -> Merged:
    """Merge a chunk's entries ({line, address}) into a list: new addresses are loaded, the
    others (already on the list, or twice in the chunk) are duplicates; every address of the
    chunk is marked as carried by this import (for `replace`)."""
    staged = len(entries)
    inserted = 0
    if entries:
        inserted = conn.execute(
            "WITH ins AS (INSERT INTO dnc_entries (list_id, address, source) SELECT %s, a, %s FROM "
            "(SELECT DISTINCT jsonb_array_elements_text(%s::jsonb) AS a) s ORDER BY a "
            "ON CONFLICT (list_id, address) DO UPDATE SET source = EXCLUDED.source "
            "RETURNING xmax = 0 AS inserted) SELECT count(*) FILTER (WHERE inserted) FROM ins",
            (list_id, f"import:{import_id}", _json(e["address"] for e in entries))).fetchone()[0]
    return Merged(loaded=inserted, inserted=inserted, duplicates=staged - inserted)


def load_chunk(conn: psycopg.Connection, import_id: int, chunk: int, list_id: int,
               entries: Sequence[Mapping[str, Any]], rejected: Iterable[Mapping[str, Any]],
               rows_read: int) -> Merged | None:
    """One parsed chunk of a DNC file, merged and recorded in one transaction (None: done before)."""
    return record_chunk(conn, import_id, chunk, rejected, rows_read,
                        lambda: merge_entries(conn, list_id, import_id, entries))


def replace_rest(conn: psycopg.Connection, import_id: int) -> int:
    """A `replace` import's end: the entries of its list that it did not carry and that were
    there before it began go (entries added meanwhile stay); returns how many."""
    return conn.execute(
        "DELETE FROM dnc_entries e USING import_jobs i WHERE i.id = %s AND e.list_id = i.dnc_list_id "
        "AND e.source <> 'import:' || i.id AND e.created_at < i.created_at", (import_id,)).rowcount

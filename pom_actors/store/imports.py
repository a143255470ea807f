"""Imports in the database: the import row and its counts, chunk progress, rejected rows, and
the merge of parsed contacts into a list.

The merge (`merge`) COPYs a batch of contacts into a temporary staging table, flags the ones
with an address on a DNC list, and moves them into `contacts` with ONE `INSERT … SELECT … ON
CONFLICT` by the dedupe key and policy:

* `update` — a contact already in the list (same key) takes the new row's values;
* `skip` — the contact already in the list stays as it is; the new row is a duplicate;
* `keep_both` — the new row is stored as another contact (its external_id, if taken, gets
  the suffix `#<import>.<line>`).

Two imports (or JSON uploads) into one list at the same time never fail on each other's
rows: `ON CONFLICT` waits for the other transaction and then updates or skips, and rows
are inserted in key order so two merges take their row locks in the same order (byte order,
`COLLATE "C"`: the same for every merge, and no locale comparisons in the sort). A chunk of a
file import is merged in the same transaction that records it in `import_chunks`; a chunk
found there is never merged again, so an import resumed after a crash duplicates nothing.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..core.imports.rows import ROW_FIELDS
from ..core.imports.splitter import parse_splitter
from .base import Store
from .catalog import NotFound

STAGE_COLUMNS = ROW_FIELDS
_VALUES = ("external_id", "first_name", "last_name", "phone1", "phone1_type", "phone2", "phone2_type",
           "email", "timezones", "attributes")
COUNTS = ("rows_read", "rows_loaded", "rows_rejected", "duplicates", "dnc_flagged")
ACTIVE = ("queued", "running")
TRANSITIONS = {"pause": ({"queued", "running"}, "paused"), "resume": ({"paused"}, "queued"),
               "stop": ({"queued", "running", "paused"}, "stopped")}


class ImportStateError(ValueError):
    """A command the import's state does not allow (pause of a finished import...)."""

    def __init__(self, import_id: int, state: str, command: str):
        super().__init__(f"import {import_id} in state {state} cannot take {command}")
        self.state, self.command = state, command


@dataclass
class Merged:
    loaded: int = 0          # inserted + updated
    inserted: int = 0
    duplicates: int = 0      # rows that met an existing contact (or an earlier row) by the key
    dnc_flagged: int = 0     # loaded rows with an address on a DNC list
    duplicate_lines: list[int] | None = None    # with want_lines: the lines that were duplicates


# -- the merge ---------------------------------------------------------------------------------
def merge(conn: psycopg.Connection, list_id: int, contacts: Sequence[Mapping[str, Any]], *,
          key: str = "external_id", policy: str = "update", import_id: int = 0,
          want_lines: bool = False) -> Merged:
    """Merge parsed contacts (dicts of `core.contacts.parse_contact` with `line`) into a list.
    Runs inside the caller's transaction (call within `conn.transaction()`)."""
    rows = [(c["line"], c["external_id"], c.get("first_name") or "", c.get("last_name") or "", c.get("phone1"),
             c.get("phone1_type"), c.get("phone2"), c.get("phone2_type"), c.get("email"),
             c.get("timezones") or (), c.get("attributes") or {}) for c in contacts]
    return merge_parsed(conn, list_id, rows, key=key, policy=policy, import_id=import_id, want_lines=want_lines)


def merge_parsed(conn: psycopg.Connection, list_id: int, rows: Sequence[tuple], *, key: str = "external_id",
                 policy: str = "update", import_id: int = 0, want_lines: bool = False) -> Merged:
    """`merge` of rows of STAGE_COLUMNS (`core.imports.rows.parse_records`'): COPY with every
    value already text, the DNC flag and (dedupe by external_id) the last or first row of each
    key chosen inside the one INSERT, no pass over the staging table in between."""
    if key not in ("external_id", "phone1", "email") or policy not in ("update", "skip", "keep_both"):
        raise ValueError(f"unknown dedupe key {key!r} or policy {policy!r}")
    if not rows:
        return Merged(duplicate_lines=[] if want_lines else None)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS import_stage (line bigint, external_id text, "
                 "first_name text, last_name text, phone1 text, phone1_type text, phone2 text, "
                 "phone2_type text, email text, timezones text[], attributes jsonb, keep boolean) "
                 "ON COMMIT DELETE ROWS")
    conn.execute("TRUNCATE import_stage")
    with conn.cursor() as cur:
        with cur.copy(f"COPY import_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row((*r[:9], _array(r[9]), _json(r[10])))
    conn.execute("SET LOCAL work_mem = '64MB'")          # the DNC set hashed, not probed per row
    staged = len(rows)
    if key != "external_id":
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (0x504F4D, list_id))   # one merge per list
    # which staged rows go in: the first (skip) or last (update) of each key, or all (keep_both)
    order = "DESC" if policy == "update" else "ASC"
    by_id = key == "external_id" and policy != "keep_both" and not want_lines
    if by_id:                                            # chosen by the INSERT itself
        source = (f"(SELECT DISTINCT ON (external_id COLLATE \"C\") * FROM import_stage "
                  f"ORDER BY external_id COLLATE \"C\", line {order}) s")
    else:
        source = "import_stage s WHERE s.keep"
        conn.execute(
            f"UPDATE import_stage s SET keep = (s.{key} IS NULL OR s.line = d.line) FROM "
            f"(SELECT DISTINCT ON ({key}) {key} AS k, line FROM import_stage ORDER BY {key}, line {order}) d "
            f"WHERE s.{key} = d.k" if policy != "keep_both" else "UPDATE import_stage SET keep = true")
        conn.execute("UPDATE import_stage SET keep = true WHERE keep IS NULL")      # rows without a key
    cols = ", ".join(_VALUES)
    updated = renamed = 0
    if policy == "keep_both":
        renamed = conn.execute(
            "UPDATE import_stage s SET external_id = s.external_id || '#' || %s || '.' || s.line "
            "FROM (SELECT line, row_number() OVER (PARTITION BY external_id ORDER BY line) AS n "
            "FROM import_stage) d WHERE d.line = s.line AND (d.n > 1 OR EXISTS "
            "(SELECT 1 FROM contacts c WHERE c.list_id = %s AND c.external_id = s.external_id))",
            (import_id, list_id)).rowcount
    elif key != "external_id":
        if policy == "update":
            sets = ", ".join(f"{c} = s.{c}" for c in _VALUES if c != "external_id")
            updated = conn.execute(
                f"UPDATE contacts c SET {sets}, dnc = {_DNC} FROM import_stage s WHERE s.keep "
                f"AND c.list_id = %s AND c.{key} = s.{key}", (list_id,)).rowcount
        conn.execute(f"UPDATE import_stage s SET keep = false WHERE s.keep AND EXISTS "
                     f"(SELECT 1 FROM contacts c WHERE c.list_id = %s AND c.{key} = s.{key})", (list_id,))
    if policy == "update" and key == "external_id":
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in _VALUES if c != "external_id")
        conflict = f"DO UPDATE SET {sets}, dnc = EXCLUDED.dnc"
    else:
        conflict = "DO NOTHING"
    returning = "external_id" if want_lines else "NULL"
    counted = conn.execute(
        f"WITH ins AS (INSERT INTO contacts (list_id, {cols}, dnc) "
        f"SELECT %s, {cols}, {_DNC} FROM {source} ORDER BY external_id COLLATE \"C\" "
        f"ON CONFLICT (list_id, external_id) {conflict} RETURNING (xmax = 0) AS inserted, dnc, "
        f"{returning} AS external_id) "
        "SELECT inserted, dnc, count(*), array_agg(external_id) FROM ins GROUP BY inserted, dnc",
        (list_id,)).fetchall()
    out = Merged()
    returned: set[str] = set()
    for inserted, dnc, n, ids in counted:
        out.loaded += n
        out.inserted += n if inserted else 0
        out.dnc_flagged += n if dnc else 0
        if want_lines:
            returned.update(ids)
    out.loaded += updated
    out.duplicates = staged - out.inserted + renamed
    if want_lines:
        lines = {r[0]: r[1] for r in conn.execute(
            "SELECT line, keep AND external_id = ANY(%s) FROM import_stage", (list(returned),))}
        out.duplicate_lines = sorted(line for line, ok in lines.items() if not ok)
    return out


_DNC = ("(s.phone1 IN (SELECT address FROM dnc_entries WHERE address IS NOT NULL) "
        "OR s.phone2 IN (SELECT address FROM dnc_entries WHERE address IS NOT NULL) "
        "OR s.email IN (SELECT address FROM dnc_entries WHERE address IS NOT NULL)) IS TRUE")
_ARRAYS: dict[tuple[str, ...], str] = {}


def _array(zones) -> str:
    """A text[] literal of time zones (few distinct sets: kept)."""
    zones = tuple(zones)
    found = _ARRAYS.get(zones)
    if found is None:
        found = "{" + ",".join('"' + z.replace("\\", "\\\\").replace('"', '\\"') + '"' for z in zones) + "}"
        if len(_ARRAYS) < 10_000:
            _ARRAYS[zones] = found
    return found


def _json(attributes) -> str:
    try:
        return orjson.dumps(attributes).decode()
    except TypeError:                                    # beyond orjson (an int over 64 bits...)
        return json.dumps(attributes)


# -- import rows -------------------------------------------------------------------------------
def create_import(conn: psycopg.Connection, list_id: int, source: str, path: str | None,
                  options: Mapping[str, Any], query: Mapping[str, Any] | None = None,
                  schedule_id: int | None = None) -> int:
    """A queued import of a file (`path`) or of a SQL query (`query`: a `PostgresSource`
    document, no password in it)."""
    if conn.execute("SELECT 1 FROM contact_lists WHERE id = %s", (list_id,)).fetchone() is None:
        raise NotFound(f"contact list {list_id} does not exist")
    if options.get("splitter"):                       # its target lists, checked up front
        targets = parse_splitter(options["splitter"]).list_ids
        found = {r[0] for r in conn.execute("SELECT id FROM contact_lists WHERE id = ANY(%s)", (targets,))}
        missing = [t for t in targets if t not in found]
        if missing:
            raise NotFound(f"contact list {missing[0]} (a splitter target) does not exist")
    return conn.execute(
        "INSERT INTO import_jobs (list_id, kind, source, state, path, options, query, schedule_id) "
        "VALUES (%s, 'contacts', %s, 'queued', %s, %s, %s, %s) RETURNING id",
        (list_id, source, path, Jsonb(dict(options)), None if query is None else Jsonb(dict(query)),
         schedule_id)).fetchone()[0]


def get_import(conn: psycopg.Connection, import_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT id, kind, list_id, dnc_list_id, source, query, schedule_id, state, message, options, chunks, rows_read, "
            "rows_loaded, rows_rejected, duplicates, dnc_flagged, created_at, updated_at, finished_at, "
            "(SELECT count(*) FROM import_chunks c WHERE c.import_id = i.id) AS chunks_done "
            "FROM import_jobs i WHERE id = %s", (import_id,)).fetchone()
    if row is None:
        raise NotFound(f"import {import_id} does not exist")
    return row


STATES = ("queued", "running", "paused", "done", "failed", "stopped")


def rows(conn: psycopg.Connection, *, list_id: int | None = None, dnc_list_id: int | None = None,
         state: str | None = None, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    """A page of imports by id, of a contact list, a DNC list or in a state if given; without
    their options and chunk progress (read one import for those)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, kind, list_id, dnc_list_id, source, schedule_id, state, message, rows_read, rows_loaded, "
            "rows_rejected, duplicates, dnc_flagged, created_at, updated_at, finished_at FROM import_jobs "
            "WHERE id > %(after)s AND (%(list)s::int IS NULL OR list_id = %(list)s) "
            "AND (%(dnc)s::int IS NULL OR dnc_list_id = %(dnc)s) AND (%(state)s::text IS NULL OR state = %(state)s) "
            "ORDER BY id LIMIT %(limit)s",
            {"after": after, "list": list_id, "dnc": dnc_list_id, "state": state, "limit": limit}).fetchall()


def rejects(conn: psycopg.Connection, import_id: int, limit: int | None = None,
            after_line: int = 0) -> list[dict[str, Any]]:
    get_import(conn, import_id)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT line, field, reason, raw FROM import_rejects WHERE import_id = %s "
                           "AND line > %s ORDER BY line LIMIT %s",
                           (import_id, after_line, limit)).fetchall()


def command(conn: psycopg.Connection, import_id: int, name: str) -> str:
    """pause / resume / stop: the new state (ImportStateError when not allowed)."""
    sources, target = TRANSITIONS[name]
    row = conn.execute("UPDATE import_jobs SET state = %s, updated_at = now(), "
                       "finished_at = CASE WHEN %s = 'stopped' THEN now() END "
                       "WHERE id = %s AND state = ANY(%s) RETURNING state",
                       (target, target, import_id, list(sources))).fetchone()
    if row is None:
        state = get_import(conn, import_id)["state"]
        raise ImportStateError(import_id, state, name)
    return row[0]


class ImportStore(Store):
    """The Importer's statements."""

    def active(self) -> list[int]:
        """Imports to work on: queued, or running when an importer stopped (crash)."""
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM import_jobs WHERE (path IS NOT NULL OR query IS NOT NULL) AND state = ANY(%s) "
            "ORDER BY id",
            (list(ACTIVE),))]

    def load(self, import_id: int) -> dict[str, Any]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute("SELECT id, kind, list_id, dnc_list_id, state, path, query, options, chunks "
                              "FROM import_jobs WHERE id = %s",
                              (import_id,)).fetchone()
        if row is None:
            raise NotFound(f"import {import_id} does not exist")
        return row

    def state(self, import_id: int) -> str:
        row = self.conn.execute("SELECT state FROM import_jobs WHERE id = %s", (import_id,)).fetchone()
        return row[0] if row else "gone"

    def start(self, import_id: int, chunks: int) -> bool:
        """queued/running -> running with its chunk count; False if paused or stopped meanwhile."""
        return self.conn.execute(
            "UPDATE import_jobs SET state = 'running', chunks = %s, updated_at = now() "
            "WHERE id = %s AND state = ANY(%s)", (chunks, import_id, list(ACTIVE))).rowcount == 1

    def set_chunks(self, import_id: int, chunks: int) -> None:
        """A query's chunk count, known once its last row was fetched."""
        self.conn.execute("UPDATE import_jobs SET chunks = %s, updated_at = now() WHERE id = %s",
                          (chunks, import_id))

    def done_chunks(self, import_id: int) -> set[int]:
        return {r[0] for r in self.conn.execute("SELECT chunk FROM import_chunks WHERE import_id = %s",
                                                (import_id,))}

    def finish(self, import_id: int, state: str, message: str | None = None) -> None:
        """Ends a running or queued import (a paused or stopped one keeps its state)."""
        self.conn.execute("UPDATE import_jobs SET state = %s, message = %s, finished_at = now(), "
                          "updated_at = now() WHERE id = %s AND state = ANY(%s)",
                          (state, message, import_id, list(ACTIVE)))

    def counts(self, import_id: int) -> dict[str, int]:
        return get_import(self.conn, import_id)

    def finish_replace(self, import_id: int) -> int:
        """A DNC import in `replace` mode ends `done` with the entries it did not carry gone
        (`store.dnc.replace_rest`), in one transaction; how many went."""
        from .dnc import replace_rest
        with self.conn.transaction():
            row = self.conn.execute("SELECT state FROM import_jobs WHERE id = %s FOR UPDATE",
                                    (import_id,)).fetchone()
            if row is None or row[0] != "running":        # paused or stopped meanwhile: nothing goes
                return 0
            removed = replace_rest(self.conn, import_id)
            self.finish(import_id, "done", f"replace: {removed} entries not in the file removed")
        return removed


def load_chunk(conn: psycopg.Connection, import_id: int, chunk: int, list_id: int,
               rows: Sequence[tuple], rejected: Iterable[Mapping[str, Any]],
               rows_read: int, key: str, policy: str) -> Merged | None:
    """Merge one parsed chunk (rows of STAGE_COLUMNS), record its rejects and counts, all in
    one transaction; None when the chunk was already loaded (a resumed import)."""
    return record_chunk(conn, import_id, chunk, rejected, rows_read,
                        lambda: merge_parsed(conn, list_id, rows, key=key, policy=policy, import_id=import_id))


def record_targets(conn: psycopg.Connection, import_id: int, chunk: int, merged: Mapping[int, Merged]) -> None:
    """A split chunk's counts per target list, in the chunk's transaction (after its claim)."""
    targets = {str(list_id): {"rows_loaded": m.loaded, "duplicates": m.duplicates, "dnc_flagged": m.dnc_flagged}
               for list_id, m in merged.items()}
    conn.execute("UPDATE import_chunks SET targets = %s WHERE import_id = %s AND chunk = %s",
                 (Jsonb(targets), import_id, chunk))


def target_counts(conn: psycopg.Connection, import_id: int) -> list[dict[str, int]]:
    """A split import's counts per target list so far, by list id."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT t.key::int AS list_id, sum((t.value->>'rows_loaded')::bigint)::bigint AS rows_loaded, "
            "sum((t.value->>'duplicates')::bigint)::bigint AS duplicates, "
            "sum((t.value->>'dnc_flagged')::bigint)::bigint AS dnc_flagged "
            "FROM import_chunks c, jsonb_each(c.targets) t WHERE c.import_id = %s "
            "GROUP BY t.key ORDER BY 1", (import_id,)).fetchall()


def record_chunk(conn: psycopg.Connection, import_id: int, chunk: int, rejected: Iterable[Mapping[str, Any]],
                 rows_read: int, merge_rows: Callable[[], Merged]) -> Merged | None:
    """`merge_rows()` (a contact or a DNC merge) with the chunk's rejects and counts, in one
    transaction that first claims the chunk; None when it was claimed before."""
    rejected = list(rejected)
    with conn.transaction():
        first = conn.execute("INSERT INTO import_chunks (import_id, chunk) VALUES (%s, %s) "
                             "ON CONFLICT DO NOTHING", (import_id, chunk)).rowcount
        if not first:
            return None
        merged = merge_rows()
        if rejected:
            with conn.cursor() as cur:
                with cur.copy("COPY import_rejects (import_id, line, field, reason, raw) FROM STDIN") as copy:
                    for r in rejected:
                        copy.write_row((import_id, r["line"], r["field"], r["reason"], Jsonb(r["raw"])))
        counts = (rows_read, merged.loaded, len(rejected), merged.duplicates, merged.dnc_flagged)
        conn.execute("UPDATE import_chunks SET rows_read = %s, rows_loaded = %s, rows_rejected = %s, "
                     "duplicates = %s, dnc_flagged = %s WHERE import_id = %s AND chunk = %s",
                     (*counts, import_id, chunk))
        conn.execute("UPDATE import_jobs SET rows_read = rows_read + %s, rows_loaded = rows_loaded + %s, "
                     "rows_rejected = rows_rejected + %s, duplicates = duplicates + %s, "
                     "dnc_flagged = dnc_flagged + %s, updated_at = now() WHERE id = %s",
                     (*counts, import_id))
    return merged

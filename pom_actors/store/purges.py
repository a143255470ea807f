"""The purges' statements (core.retention decides what and when): the retention config, the
purge runs, and the deletes — each one statement on an autocommit connection, so each batch is
its own short transaction, touching at most `n` rows found through an index:

* outbox and agent events: by id, in `(after, below)` with LIMIT (`below` from the bisection
  of `core.retention.boundary`), published outbox rows only, never an agent's latest event;
* imports: a finished import's rejected rows and chunks by primary key with LIMIT, then the
  import itself once they are gone;
* attempts: an ended job's rows before the cut-off, through `ix_attempts_job_at`, with LIMIT;
  the statement itself checks the job has ended (a job never leaves an end state).

Every session gives up a lock wait after `lock_timeout` and a statement after
`statement_timeout` (the run fails and is resumed at the next tick): a purge never queues
behind, or holds up, the hot path for long.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..core import retention
from ..core.lifecycle import TERMINAL
from ..core.load import Restrictions
from . import load as loadstore
from .base import Store, read_document, write_document

ENDED_JOBS = [str(s) for s in TERMINAL]
FINISHED_IMPORTS = ["done", "failed", "stopped"]
RUN_COLUMNS = ("id, trigger, state, requested_by, cutoffs, counts, batches, message, created_at, started_at, "
               "finished_at, updated_at")
# id-keyed tables: (table, time column, the rows that must stay whatever their age)
ID_TABLES = {
    "outbox": ("event_outbox", "created_at", "published_at IS NOT NULL"),
    "agent_events": ("agent_events", "at",
                     "EXISTS (SELECT 1 FROM agent_events n WHERE n.agent_id = t.agent_id AND n.id > t.id)"),
}


class PurgePending(RuntimeError):
    """A purge asked for while another run is still to carry out (one at a time: 409)."""


# -- configuration -------------------------------------------------------------------------------
def get_config(conn: psycopg.Connection) -> retention.RetentionConfig:
    return retention.RetentionConfig.model_validate(read_document(conn, "retention_config") or {})


def save_config(conn: psycopg.Connection, document: dict[str, Any]) -> retention.RetentionConfig:
    """Validate (pydantic.ValidationError) and store the retention config."""
    config = retention.RetentionConfig.model_validate(document)
    write_document(conn, "retention_config", config.document())
    return config


# -- runs ------------------------------------------------------------------------------------------
def create_run(conn: psycopg.Connection, trigger: str, *, state: str = "queued", requested_by: str | None = None,
               message: str | None = None) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"INSERT INTO purge_runs (trigger, state, requested_by, message) VALUES (%s, %s, %s, %s) "
                           f"RETURNING {RUN_COLUMNS}", (trigger, state, requested_by, message)).fetchone()


def create_manual_run(conn: psycopg.Connection, requested_by: str | None) -> dict[str, Any] | None:
    """A queued manual run, unless a run is pending (None)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "INSERT INTO purge_runs (trigger, state, requested_by) SELECT 'manual', 'queued', %s "
            "WHERE NOT EXISTS (SELECT 1 FROM purge_runs WHERE state IN ('queued', 'deferred', 'running')) "
            f"RETURNING {RUN_COLUMNS}", (requested_by,)).fetchone()


def run(conn: psycopg.Connection, run_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {RUN_COLUMNS} FROM purge_runs WHERE id = %s", (run_id,)).fetchone()


def runs(conn: psycopg.Connection, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
    """Newest first; `before`: ids below this (the next page)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {RUN_COLUMNS} FROM purge_runs WHERE id < %s ORDER BY id DESC LIMIT %s",
                           (before if before is not None else 2**31 - 1, limit)).fetchall()


def pending_run(conn: psycopg.Connection) -> dict[str, Any] | None:
    """The oldest run still to carry out (queued, deferred, or running when its director died)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {RUN_COLUMNS} FROM purge_runs WHERE state IN ('queued', 'deferred', 'running') "
                           "ORDER BY id LIMIT 1").fetchone()


def last_scheduled(conn: psycopg.Connection) -> datetime | None:
    return conn.execute("SELECT max(created_at) FROM purge_runs WHERE trigger = 'schedule'").fetchone()[0]


def database_now(conn: psycopg.Connection) -> datetime:
    return conn.execute("SELECT now()").fetchone()[0]


def update_run(conn: psycopg.Connection, run_id: int, **fields: Any) -> None:
    """Set some of state, cutoffs, counts, batches, message, started_at, finished_at."""
    allowed = {"state", "cutoffs", "counts", "batches", "message", "started_at", "finished_at"}
    assert set(fields) <= allowed, set(fields) - allowed
    values = {k: Jsonb(v) if k in ("cutoffs", "counts") else v for k, v in fields.items()}
    sets = ", ".join(f"{k} = %({k})s" for k in values)
    conn.execute(f"UPDATE purge_runs SET {sets}, updated_at = now() WHERE id = %(id)s", {**values, "id": run_id})


# -- deletes -----------------------------------------------------------------------------------------
def id_range(conn: psycopg.Connection, target: str) -> tuple[int, int] | None:
    table = ID_TABLES[target][0]
    lo, hi = conn.execute(f"SELECT min(id), max(id) FROM {table}").fetchone()
    return None if lo is None else (lo, hi)


def is_old(conn: psycopg.Connection, target: str, cutoff: datetime, at_or_after: int) -> bool | None:
    """Is the first row with an id at or over `at_or_after` older than `cutoff`? (None: no row)"""
    table, column, _ = ID_TABLES[target]
    row = conn.execute(f"SELECT {column} < %s FROM {table} WHERE id >= %s ORDER BY id LIMIT 1",
                       (cutoff, at_or_after)).fetchone()
    return None if row is None else row[0]


def delete_ids(conn: psycopg.Connection, target: str, cutoff: datetime, after: int, below: int,
               n: int) -> tuple[int, int | None]:
    """Delete up to `n` rows with `after < id < below`, older than `cutoff`, that may go: (rows
    deleted, the highest id deleted)."""
    table, column, keep = ID_TABLES[target]
    row = conn.execute(
        f"WITH gone AS (DELETE FROM {table} WHERE id IN (SELECT t.id FROM {table} t WHERE t.id > %(after)s "
        f"AND t.id < %(below)s AND t.{column} < %(cutoff)s AND {keep} ORDER BY t.id LIMIT %(n)s) RETURNING id) "
        "SELECT count(*), max(id) FROM gone",
        {"after": after, "below": below, "cutoff": cutoff, "n": n}).fetchone()
    return row[0], row[1]


def old_imports(conn: psycopg.Connection, cutoff: datetime, after: int = 0, limit: int = 100) -> list[int]:
    """Imports (id over `after`) finished before `cutoff`."""
    return [r[0] for r in conn.execute(
        "SELECT id FROM import_jobs WHERE state = ANY(%s) AND finished_at < %s AND id > %s ORDER BY id LIMIT %s",
        (FINISHED_IMPORTS, cutoff, after, limit))]


def delete_import_rows(conn: psycopg.Connection, import_id: int, n: int) -> int:
    """Up to `n` of a finished import's rejected rows, else of its chunks, else the import
    itself (its rows gone): the rows deleted (0: nothing left of it)."""
    for table, key in (("import_rejects", "line"), ("import_chunks", "chunk")):
        deleted = conn.execute(
            f"DELETE FROM {table} WHERE (import_id, {key}) IN (SELECT import_id, {key} FROM {table} "
            f"WHERE import_id = %s ORDER BY {key} LIMIT %s)", (import_id, n)).rowcount
        if deleted:
            return deleted
    return conn.execute("DELETE FROM import_jobs WHERE id = %s AND state = ANY(%s)",
                        (import_id, FINISHED_IMPORTS)).rowcount


def ended_jobs_with_old_attempts(conn: psycopg.Connection, cutoff: datetime, after: int = 0,
                                 limit: int = 100) -> list[int]:
    """Ended jobs (id over `after`) with a ledger row before `cutoff`: one index probe per job."""
    return [r[0] for r in conn.execute(
        "SELECT j.id FROM jobs j WHERE j.state = ANY(%s) AND j.id > %s AND EXISTS "
        "(SELECT 1 FROM attempts a WHERE a.job_id = j.id AND a.created_at < %s) ORDER BY j.id LIMIT %s",
        (ENDED_JOBS, after, cutoff, limit))]


def delete_attempts(conn: psycopg.Connection, job_id: int, cutoff: datetime, n: int) -> int:
    """Up to `n` ledger rows of an ended job created before `cutoff` (none if the job has not ended)."""
    return conn.execute(
        "DELETE FROM attempts WHERE (work_item_id, attempt_no) IN (SELECT a.work_item_id, a.attempt_no "
        "FROM attempts a WHERE a.job_id = %(job)s AND a.created_at < %(cutoff)s "
        "AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = %(job)s AND j.state = ANY(%(ended)s)) LIMIT %(n)s)",
        {"job": job_id, "cutoff": cutoff, "ended": ENDED_JOBS, "n": n}).rowcount


class PurgeStore(Store):
    """The director's purge connection (its own: a purge runs beside the director's tick)."""

    SESSION = {"lock_timeout": "2s", "statement_timeout": "30s"}

    def config(self) -> retention.RetentionConfig:
        return get_config(self.conn)

    def restrictions(self) -> Restrictions:
        return loadstore.restrictions(self.conn)

    def database_now(self) -> datetime:
        return database_now(self.conn)

    def pending_run(self) -> dict[str, Any] | None:
        return pending_run(self.conn)

    def run(self, run_id: int) -> dict[str, Any] | None:
        return run(self.conn, run_id)

    def last_scheduled(self) -> datetime | None:
        return last_scheduled(self.conn)

    def create_run(self, trigger: str, **kw: Any) -> dict[str, Any]:
        return create_run(self.conn, trigger, **kw)

    def update_run(self, run_id: int, **fields: Any) -> None:
        update_run(self.conn, run_id, **fields)

    def id_range(self, target: str) -> tuple[int, int] | None:
        return id_range(self.conn, target)

    def is_old(self, target: str, cutoff: datetime, at_or_after: int) -> bool | None:
        return is_old(self.conn, target, cutoff, at_or_after)

    def delete_ids(self, target: str, cutoff: datetime, after: int, below: int, n: int) -> tuple[int, int | None]:
        return delete_ids(self.conn, target, cutoff, after, below, n)

    def old_imports(self, cutoff: datetime, after: int, limit: int) -> list[int]:
        return old_imports(self.conn, cutoff, after, limit)

    def delete_import_rows(self, import_id: int, n: int) -> int:
        return delete_import_rows(self.conn, import_id, n)

    def ended_jobs_with_old_attempts(self, cutoff: datetime, after: int, limit: int) -> list[int]:
        return ended_jobs_with_old_attempts(self.conn, cutoff, after, limit)

    def delete_attempts(self, job_id: int, cutoff: datetime, n: int) -> int:
        return delete_attempts(self.conn, job_id, cutoff, n)

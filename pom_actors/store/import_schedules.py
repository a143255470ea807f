"""Import schedules in the database: imports the director runs at the due times of a cron
schedule (docs/imports.md, "Scheduled imports"). A schedule's `source` is a `PostgresSource`
document, or `{"path": ...}` for a server-side file read as it is at each due time.

A due time runs once, across director restarts and two directors alike: `start_due` moves
`last_run_at` forward only from the value the director read (a conditional UPDATE) and creates
the import in the same transaction — a second tick, or a second director, for the same due
time updates no row and creates nothing.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..core.imports.query import PostgresSource
from .base import Store
from .catalog import NotFound
from .imports import create_import

COLUMNS = ("id, name, list_id, schedule, source, options, last_run_at, last_import_id, created_at, "
           "updated_at")
MAX_PAGE = 1000


def create(conn: psycopg.Connection, name: str, list_id: int, schedule: Mapping[str, Any],
           source: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    if conn.execute("SELECT 1 FROM contact_lists WHERE id = %s", (list_id,)).fetchone() is None:
        raise NotFound(f"contact list {list_id} does not exist")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"INSERT INTO import_schedules (name, list_id, schedule, source, options) "
                           f"VALUES (%s, %s, %s, %s, %s) RETURNING {COLUMNS}",
                           (name, list_id, Jsonb(dict(schedule)), Jsonb(dict(source)),
                            Jsonb(dict(options)))).fetchone()


def get(conn: psycopg.Connection, schedule_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {COLUMNS} FROM import_schedules WHERE id = %s", (schedule_id,)).fetchone()
    if row is None:
        raise NotFound(f"import schedule {schedule_id} does not exist")
    return row


def page(conn: psycopg.Connection, after: int = 0, limit: int = MAX_PAGE) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {COLUMNS} FROM import_schedules WHERE id > %s ORDER BY id LIMIT %s",
                           (after, min(limit, MAX_PAGE))).fetchall()


def update(conn: psycopg.Connection, schedule_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Replace the given fields (name, list_id, schedule, source, options)."""
    allowed = ("name", "list_id", "schedule", "source", "options")
    sets = [(k, Jsonb(dict(v)) if isinstance(v, Mapping) else v) for k, v in changes.items() if k in allowed]
    if "list_id" in changes and conn.execute("SELECT 1 FROM contact_lists WHERE id = %s",
                                             (changes["list_id"],)).fetchone() is None:
        raise NotFound(f"contact list {changes['list_id']} does not exist")
    if sets:
        found = conn.execute(f"UPDATE import_schedules SET {', '.join(f'{k} = %s' for k, _ in sets)}, "
                             "updated_at = now() WHERE id = %s", (*(v for _, v in sets), schedule_id)).rowcount
        if not found:
            raise NotFound(f"import schedule {schedule_id} does not exist")
    return get(conn, schedule_id)


def delete(conn: psycopg.Connection, schedule_id: int) -> None:
    if not conn.execute("DELETE FROM import_schedules WHERE id = %s", (schedule_id,)).rowcount:
        raise NotFound(f"import schedule {schedule_id} does not exist")


def all_schedules(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every schedule, for the director's tick (few rows: one per recurring import)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {COLUMNS} FROM import_schedules ORDER BY id").fetchall()


def start_due(conn: psycopg.Connection, schedule: Mapping[str, Any], run_at: datetime) -> int | None:
    """The import of `schedule` for due time `run_at`, unless that time (or a later one) was
    served already since the schedule was read: the new import's id, or None."""
    with conn.transaction():
        claimed = conn.execute(
            "UPDATE import_schedules SET last_run_at = %s, updated_at = now() WHERE id = %s "
            "AND last_run_at IS NOT DISTINCT FROM %s", (run_at, schedule["id"], schedule["last_run_at"])).rowcount
        if not claimed:
            return None
        path = schedule["source"].get("path")
        if path is not None:
            import_id = create_import(conn, schedule["list_id"], f"path:{path}", path, schedule["options"],
                                      schedule_id=schedule["id"])
        else:
            source = PostgresSource(**schedule["source"])
            import_id = create_import(conn, schedule["list_id"], source.label(), None, schedule["options"],
                                      query=source.model_dump(exclude_none=True), schedule_id=schedule["id"])
        conn.execute("UPDATE import_schedules SET last_import_id = %s WHERE id = %s", (import_id, schedule["id"]))
    return import_id


def mark_served(conn: psycopg.Connection, schedule_id: int, at: datetime, read: datetime | None) -> None:
    """The schedule is served up to `at` without a run (it was made after its last due time)."""
    conn.execute("UPDATE import_schedules SET last_run_at = %s WHERE id = %s AND last_run_at IS NOT DISTINCT FROM %s",
                 (at, schedule_id, read))


class ImportScheduleStore(Store):
    """The director's statements for import schedules (its own connection)."""

    def schedules(self) -> list[dict[str, Any]]:
        return all_schedules(self.conn)

    def start_due(self, schedule: Mapping[str, Any], run_at: datetime) -> int | None:
        return start_due(self.conn, schedule, run_at)

    def mark_served(self, schedule_id: int, at: datetime, read: datetime | None) -> None:
        mark_served(self.conn, schedule_id, at, read)

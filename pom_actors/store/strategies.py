"""Strategy versions read and deleted. Saving is catalog.save_strategy: a new upload of a name is
its next version, never an edit, so a version is read or deleted whole, by id."""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from .catalog import NotFound

SUMMARY = "s.id, s.name, s.version, s.created_at, (SELECT max(version) FROM strategies v WHERE v.name = s.name) AS latest"


class StrategyInUse(RuntimeError):
    """A version a campaign or a job runs with cannot be deleted (409)."""


def rows(conn: psycopg.Connection, name: str | None = None, *, after: int = 0,
         limit: int | None = None) -> list[dict[str, Any]]:
    """The versions by id (all, or one name's), each with its name's latest version number."""
    where, params = "s.id > %s", [after]
    if name is not None:
        where, params = where + " AND s.name = %s", params + [name]
    return conn.cursor(row_factory=dict_row).execute(
        f"SELECT {SUMMARY} FROM strategies s WHERE {where} ORDER BY s.id LIMIT %s", (*params, limit)).fetchall()


def row(conn: psycopg.Connection, strategy_id: int) -> dict[str, Any]:
    """A version with its stored document and the source it was uploaded as."""
    found = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {SUMMARY}, s.document, s.source FROM strategies s WHERE s.id = %s", (strategy_id,)).fetchone()
    if found is None:
        raise NotFound(f"strategy {strategy_id} does not exist")
    return found


def delete(conn: psycopg.Connection, strategy_id: int) -> None:
    """Refused while a campaign uses the version or a job ran with it (its history keeps it)."""
    with conn.transaction():
        if conn.execute("SELECT id FROM strategies WHERE id = %s FOR UPDATE", (strategy_id,)).fetchone() is None:
            raise NotFound(f"strategy {strategy_id} does not exist")
        users = [r[0] for r in conn.execute(
            "SELECT name FROM campaigns WHERE strategy_id = %s ORDER BY id LIMIT 10", (strategy_id,))]
        if users:
            raise StrategyInUse(f"strategy {strategy_id} is used by campaign(s) {', '.join(users)}")
        jobs = [str(r[0]) for r in conn.execute(
            "SELECT id FROM jobs WHERE strategy_id = %s ORDER BY id LIMIT 10", (strategy_id,))]
        if jobs:
            raise StrategyInUse(f"strategy {strategy_id} was run by job(s) {', '.join(jobs)}")
        conn.execute("DELETE FROM strategies WHERE id = %s", (strategy_id,))

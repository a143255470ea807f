"""Contact lists read: a page of lists (no counts: counting every list of a page would read
every contact), and one list with its contact count. Lists are made by catalog.create_list."""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from .catalog import NotFound

COLUMNS = "l.id, l.name, l.description, l.attributes, l.created_at"


def rows(conn: psycopg.Connection, *, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    return conn.cursor(row_factory=dict_row).execute(
        f"SELECT {COLUMNS} FROM contact_lists l WHERE l.id > %s ORDER BY l.id LIMIT %s", (after, limit)).fetchall()


def row(conn: psycopg.Connection, list_id: int) -> dict[str, Any]:
    found = conn.cursor(row_factory=dict_row).execute(
        f"SELECT {COLUMNS}, (SELECT count(*) FROM contacts c WHERE c.list_id = l.id) AS contacts "
        "FROM contact_lists l WHERE l.id = %s", (list_id,)).fetchone()
    if found is None:
        raise NotFound(f"contact list {list_id} does not exist")
    return found

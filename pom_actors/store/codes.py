"""Completion codes in the database: the system's (campaign_id NULL, seeded from
core.codes.SYSTEM_CODES, read-only) and each campaign's custom codes — those its strategy
declares (copied when the campaign is created) and those added through the API. A job's
managers read the campaign's codes when they start (`custom_codes`), so a code added or
changed applies to the jobs started (or managers restarted) afterwards; the web services'
`set_code` reads them at once. A disabled custom code (`enabled` false) stays listed, in
reports and on past attempts, and its campaign's strategy still routes on it, but agents are
not offered it and `set_code` refuses it."""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from ..core.codes import FLAGS, CompletionCode
from .catalog import NotFound, campaign, load_strategy

COLUMNS = "id, campaign_id, name, enabled, " + ", ".join(FLAGS)


class CodeReadOnly(RuntimeError):
    """A system code cannot be changed or deleted (409)."""


class CodeInUse(RuntimeError):
    """A code the campaign's strategy declares cannot be deleted (409): its results name it."""


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "system": row["campaign_id"] is None}


def codes(conn: psycopg.Connection, *, campaign_id: int | None = None, system: bool | None = None,
          enabled: bool | None = None, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    """Codes by id above `after`, at most `limit`: one campaign's custom codes (`campaign_id`),
    the system's (`system`), the others (`system=False`), or all; only those `enabled` (or not)."""
    where, params = ["id > %s"], [after]
    if campaign_id is not None:
        where, params = where + ["campaign_id = %s"], params + [campaign_id]
    if system is not None:
        where.append("campaign_id IS NULL" if system else "campaign_id IS NOT NULL")
    if enabled is not None:
        where, params = where + ["enabled = %s"], params + [enabled]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {COLUMNS} FROM completion_codes WHERE {' AND '.join(where)} "
                           "ORDER BY id LIMIT %s", (*params, limit)).fetchall()
    return [_view(r) for r in rows]


def code(conn: psycopg.Connection, code_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {COLUMNS} FROM completion_codes WHERE id = %s", (code_id,)).fetchone()
    if row is None:
        raise NotFound(f"completion code {code_id} does not exist")
    return _view(row)


def create(conn: psycopg.Connection, campaign_id: int, new: CompletionCode) -> dict[str, Any]:
    """A custom code of the campaign (NotFound without it; a name it has already: 409)."""
    campaign(conn, campaign_id)
    code_id = conn.execute(
        f"INSERT INTO completion_codes (campaign_id, name, {', '.join(FLAGS)}) VALUES (%s, %s, "
        + ", ".join(["%s"] * len(FLAGS)) + ") RETURNING id",
        (campaign_id, new.name, *(getattr(new, f) for f in FLAGS))).fetchone()[0]
    return code(conn, code_id)


def _custom(conn: psycopg.Connection, code_id: int) -> dict[str, Any]:
    found = code(conn, code_id)
    if found["system"]:
        raise CodeReadOnly(f"completion code {found['name']!r} is a system code: it cannot be changed")
    return found


def update(conn: psycopg.Connection, code_id: int, flags: dict[str, bool]) -> dict[str, Any]:
    """Set some FLAGS of a custom code, or `enabled` (a disabled one: `codes` module doc)."""
    with conn.transaction():
        _custom(conn, code_id)
        if flags:
            conn.execute(f"UPDATE completion_codes SET {', '.join(f'{f} = %({f})s' for f in flags)} "
                         "WHERE id = %(id)s", {**flags, "id": code_id})
    return code(conn, code_id)


def delete(conn: psycopg.Connection, code_id: int) -> None:
    """Delete a custom code the campaign's strategy does not declare (its attempts keep the name)."""
    with conn.transaction():
        found = _custom(conn, code_id)
        strategy_id = campaign(conn, found["campaign_id"])["strategy_id"]
        if found["name"] in {c.name for c in load_strategy(conn, strategy_id).custom_codes}:
            raise CodeInUse(f"completion code {found['name']!r} is declared by the strategy of campaign "
                            f"{found['campaign_id']}: change its flags, or the strategy")
        conn.execute("DELETE FROM completion_codes WHERE id = %s", (code_id,))


def custom_codes(conn: psycopg.Connection, campaign_id: int) -> list[CompletionCode]:
    """The campaign's custom codes, as its jobs' managers use them (disabled ones marked)."""
    rows = conn.execute(f"SELECT name, enabled, {', '.join(FLAGS)} FROM completion_codes WHERE campaign_id = %s "
                        "ORDER BY id", (campaign_id,)).fetchall()
    return [CompletionCode(name, *flags, system=False, enabled=enabled) for name, enabled, *flags in rows]

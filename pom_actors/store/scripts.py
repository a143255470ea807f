"""Agent scripts in the database (core/scripts.py): their rows, the changes the API makes,
and the lookups of the strategies that name them (when a strategy is saved; when a job's
managers start)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ..core.scripts import AgentScript
from ..core.strategy import Strategy, StrategyError
from .catalog import NotFound

COLUMNS = "id, name, kind, body, description, enabled, created_at, updated_at"
# the strategies of campaigns whose handlers name a script (`%(name)s`)
_NAMED_BY_CAMPAIGNS = ("SELECT c.id FROM campaigns c JOIN strategies s ON s.id = c.strategy_id "
                       "WHERE jsonb_path_exists(s.document, '$.handlers.*.script.name ? (@ == $n)', "
                       "jsonb_build_object('n', %(name)s::text)) ORDER BY c.id LIMIT 10")


class ScriptInUse(RuntimeError):
    """A script a campaign's strategy names cannot be deleted nor renamed (409)."""


def scripts(conn: psycopg.Connection, *, after: int = 0, limit: int | None = None,
            enabled: bool | None = None) -> list[dict[str, Any]]:
    where, params = "id > %s", [after]
    if enabled is not None:
        where, params = where + " AND enabled = %s", params + [enabled]
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {COLUMNS} FROM agent_scripts WHERE {where} ORDER BY id LIMIT %s",
                           (*params, limit)).fetchall()


def script(conn: psycopg.Connection, script_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {COLUMNS} FROM agent_scripts WHERE id = %s", (script_id,)).fetchone()
    if row is None:
        raise NotFound(f"agent script {script_id} does not exist")
    return row


def create(conn: psycopg.Connection, new: AgentScript, description: str = "", enabled: bool = True) -> dict[str, Any]:
    """A new script (a name taken: 409)."""
    script_id = conn.execute(
        "INSERT INTO agent_scripts (name, kind, body, description, enabled) VALUES (%s, %s, %s, %s, %s) "
        "RETURNING id", (new.name, new.kind, new.body, description, enabled)).fetchone()[0]
    return script(conn, script_id)


def _in_use(conn: psycopg.Connection, name: str, doing: str) -> None:
    users = [r[0] for r in conn.execute(_NAMED_BY_CAMPAIGNS, {"name": name})]
    if users:
        raise ScriptInUse(f"agent script {name!r} is named by the strategy of campaign(s) "
                          f"{', '.join(map(str, users))}: it cannot be {doing}")


def update(conn: psycopg.Connection, script_id: int, changed: AgentScript | None, **fields: Any) -> dict[str, Any]:
    """Replace the name, kind and body with `changed` (checked by the caller) and set
    `description` / `enabled` if given. Jobs' managers read it when they next start."""
    with conn.transaction():
        found = conn.execute("SELECT name FROM agent_scripts WHERE id = %s FOR UPDATE", (script_id,)).fetchone()
        if found is None:
            raise NotFound(f"agent script {script_id} does not exist")
        values = dict(fields)
        if changed is not None:
            if changed.name != found[0]:
                _in_use(conn, found[0], "renamed")
            values.update(name=changed.name, kind=changed.kind, body=changed.body)
        if values:
            conn.execute(f"UPDATE agent_scripts SET {', '.join(f'{k} = %({k})s' for k in values)}, "
                         "updated_at = now() WHERE id = %(id)s", {**values, "id": script_id})
    return script(conn, script_id)


def delete(conn: psycopg.Connection, script_id: int) -> None:
    with conn.transaction():
        found = conn.execute("SELECT name FROM agent_scripts WHERE id = %s FOR UPDATE", (script_id,)).fetchone()
        if found is None:
            raise NotFound(f"agent script {script_id} does not exist")
        _in_use(conn, found[0], "deleted")
        conn.execute("DELETE FROM agent_scripts WHERE id = %s", (script_id,))


def found(conn: psycopg.Connection, names: Iterable[str]) -> dict[str, AgentScript]:
    """The enabled scripts of `names`, by name."""
    rows = conn.execute("SELECT name, kind, body FROM agent_scripts WHERE name = ANY(%s) AND enabled",
                        (sorted(names),)).fetchall()
    return {name: AgentScript(name, kind, body) for name, kind, body in rows}


def check_named(conn: psycopg.Connection, strategy: Strategy) -> None:
    """StrategyError at each handler's `script.name` that names no stored script."""
    names = strategy.script_names()
    if not names:
        return
    known = {r[0] for r in conn.execute("SELECT name FROM agent_scripts WHERE name = ANY(%s)", (sorted(names),))}
    errors = [{"path": f"handlers.{key}.script.name", "message": f"no agent script is called {h.script.name!r}"}
              for key, h in strategy.handlers.items()
              if h.script is not None and h.script.name is not None and h.script.name not in known]
    if errors:
        raise StrategyError(errors)

"""Zones (core.zones): their rows, and the changes the API makes, each checked under a lock on
the table so that two changes made at once cannot close a failover cycle between them."""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from ..core.lifecycle import ACTIVE, TERMINAL
from ..core.zones import Zone, ZoneError, ZoneState, check_failover, check_name, parse_state
from .catalog import NotFound

# Zones are few by nature (sites, data centres); the bound keeps GET /api/v1/zones one answer
# and the director's reading of them (every tick) small.
MAX_ZONES = 100

COLUMNS = "name, state, failover_zone, reason, updated_at"
ACTIVE_STATES = sorted(str(s) for s in ACTIVE)


class ZoneInUse(RuntimeError):
    """A zone that campaigns, active jobs or other zones' failovers still name (409)."""


def zones(conn: psycopg.Connection) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {COLUMNS} FROM zones ORDER BY name").fetchall()
    return [{**r, "state": str(parse_state(r["state"]))} for r in rows]


def zone_map(conn: psycopg.Connection) -> dict[str, Zone]:
    """Every zone as core.zones sees it."""
    return {r["name"]: Zone(r["name"], ZoneState(r["state"]), r["failover_zone"]) for r in zones(conn)}


def zone(conn: psycopg.Connection, name: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {COLUMNS} FROM zones WHERE name = %s", (name,)).fetchone()
    if not row:
        raise NotFound(f"zone {name!r} does not exist")
    return {**row, "state": str(parse_state(row["state"]))}


def ensure(conn: psycopg.Connection, name: str) -> None:
    """The zone exists (the configured default zone: jobs and servers name it unasked)."""
    conn.execute("INSERT INTO zones (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (check_name(name),))


def check_exists(conn: psycopg.Connection, name: str, field: str = "zone") -> str:
    """`name` if it is a zone; ZoneError on `field` otherwise."""
    check_name(name, field)
    if not conn.execute("SELECT 1 FROM zones WHERE name = %s", (name,)).fetchone():
        raise ZoneError(field, f"zone {name!r} does not exist")
    return name


def _locked(conn: psycopg.Connection) -> dict[str, Zone]:
    conn.execute("LOCK TABLE zones IN SHARE ROW EXCLUSIVE MODE")
    return zone_map(conn)


def create(conn: psycopg.Connection, name: str, failover: str | None = None,
           state: ZoneState = ZoneState.UP, reason: str = "") -> dict[str, Any]:
    """A new zone (ZoneInUse: its name is taken, or there are MAX_ZONES already)."""
    check_name(name)
    with conn.transaction():
        existing = _locked(conn)
        if name in existing:
            raise ZoneInUse(f"zone {name!r} already exists")
        if len(existing) >= MAX_ZONES:
            raise ZoneInUse(f"there are {len(existing)} zones, the most there may be: delete one first")
        check_failover({**existing, name: Zone(name, state)}, name, failover)
        conn.execute("INSERT INTO zones (name, state, failover_zone, reason) VALUES (%s, %s, %s, %s)",
                     (name, str(state), failover, reason))
    return zone(conn, name)


def update(conn: psycopg.Connection, name: str, *, state: ZoneState | None = None, reason: str | None = None,
           failover: str | None = None, set_failover: bool = False) -> dict[str, Any]:
    """Set a zone's state (with why) and/or its failover (`set_failover`; None: no failover)."""
    with conn.transaction():
        existing = _locked(conn)
        if name not in existing:
            raise NotFound(f"zone {name!r} does not exist")
        sets, params = ["updated_at = now()"], []
        if set_failover:
            check_failover(existing, name, failover)
            sets.append("failover_zone = %s")
            params.append(failover)
        if state is not None:
            sets += ["state = %s", "reason = %s"]
            params += [str(state), reason or ""]
        conn.execute(f"UPDATE zones SET {', '.join(sets)} WHERE name = %s", (*params, name))
    return zone(conn, name)


def delete(conn: psycopg.Connection, name: str, default_zone: str) -> None:
    """Delete a zone no campaign, job not ended or other zone's failover names (ZoneInUse)."""
    if name == default_zone:
        raise ZoneInUse(f"zone {name!r} is the default zone")
    with conn.transaction():
        if name not in _locked(conn):
            raise NotFound(f"zone {name!r} does not exist")
        users = conn.execute(
            "SELECT 'zone ' || name FROM zones WHERE failover_zone = %(z)s "
            "UNION ALL SELECT 'campaign ' || name FROM campaigns WHERE zone = %(z)s "
            "UNION ALL SELECT 'job ' || id FROM jobs WHERE (zone = %(z)s OR placed_zone = %(z)s) "
            "AND state <> ALL(%(ended)s) LIMIT 10",
            {"z": name, "ended": sorted(str(s) for s in TERMINAL)}).fetchall()
        if users:
            raise ZoneInUse(f"zone {name!r} is in use by {', '.join(u for (u,) in users)}")
        conn.execute("DELETE FROM zones WHERE name = %s", (name,))


def set_placed(conn: psycopg.Connection, job_id: int, expected: str | None, placed: str | None) -> bool:
    """Compare-and-set of the zone a job's managers are in (the director's, as it moves it)."""
    return conn.execute("UPDATE jobs SET placed_zone = %s WHERE id = %s AND placed_zone IS NOT DISTINCT FROM %s",
                        (placed, job_id, expected)).rowcount == 1


def placements(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    """Per zone, its active jobs: placed there, and waiting (their own zone, placed nowhere)."""
    out: dict[str, dict[str, int]] = {}
    for zone_name, kind, n in conn.execute(
            "SELECT coalesce(placed_zone, zone), CASE WHEN placed_zone IS NULL THEN 'waiting' ELSE 'placed' END, "
            "count(*) FROM jobs WHERE state = ANY(%s) GROUP BY 1, 2", (list(ACTIVE_STATES),)):
        out.setdefault(zone_name, {"placed": 0, "waiting": 0})[kind] = n
    return out

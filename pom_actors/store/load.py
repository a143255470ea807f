"""The load monitor's statements: readings of the database (`pg_stat_activity`) and of POM
(jobs, agents, imports), the alarms (raised and cleared with their event in the outbox, in
one statement), the latest readings per server, the configuration, and the restrictions in
force (`restrictions(conn)`: one round trip, for any process that must obey them).

Reading other sessions' rows of `pg_stat_activity` needs the same role or `pg_read_all_stats`.
"""
from __future__ import annotations

import time
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..core import load
from ..core.events import ALARMS_TOPIC, alarm_event, alarm_key
from ..core.lifecycle import ACTIVE
from .base import Store, read_document, write_document

# The session-level advisory lock the leading load monitor holds ("pomload"): it alone reads
# the database and POM figures; when its session ends (monitor or server gone) another takes it.
LEADER_LOCK = 0x706F6D6C6F6164
ALARM_STATES = ("active", "cleared", "all")


# -- readings ----------------------------------------------------------------------------------
def database_readings(conn: psycopg.Connection, long_query_s: float) -> dict[str, float]:
    """Sessions by state, connections against max_connections, queries running longer than
    `long_query_s`, sessions waiting on a lock another holds; of the whole server (every
    database), client sessions only, this one left out."""
    row = conn.execute(
        "SELECT count(*), "
        "count(*) FILTER (WHERE state = 'active'), "
        "count(*) FILTER (WHERE state = 'idle'), "
        "count(*) FILTER (WHERE state LIKE 'idle in transaction%%'), "
        "count(*) FILTER (WHERE state = 'active' AND query_start < now() - make_interval(secs => %s)), "
        "count(*) FILTER (WHERE cardinality(pg_blocking_pids(pid)) > 0), "
        "current_setting('max_connections')::int "
        "FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        (long_query_s,)).fetchone()
    total, active, idle, idle_tx, long, blocked, max_conn = row
    connections = total + 1                      # and this one
    return {"database.sessions": float(active), "database.connections": round(100.0 * connections / max_conn, 2),
            "database.long_queries": float(long), "database.blocked": float(blocked),
            "database.connections_count": float(connections), "database.max_connections": float(max_conn),
            "database.idle": float(idle), "database.idle_in_transaction": float(idle_tx)}


def pom_readings(conn: psycopg.Connection) -> dict[str, float]:
    """Active jobs, agents logged in, imports running."""
    jobs, agents, imports = conn.execute(
        "SELECT (SELECT count(*) FROM jobs WHERE state = ANY(%s)), "
        "(SELECT count(*) FROM agents WHERE state NOT IN ('logged_out', 'deleted')), "
        "(SELECT count(*) FROM import_jobs WHERE state = 'running')",
        ([str(s) for s in ACTIVE],)).fetchone()
    return {"pom.jobs": float(jobs), "pom.agents": float(agents), "pom.imports": float(imports)}


def record_readings(conn: psycopg.Connection, server: str, node_id: str, leader: bool,
                    readings: dict[str, float]) -> None:
    conn.execute(
        "INSERT INTO load_readings (server, node_id, leader, readings, sampled_at) VALUES (%s, %s, %s, %s, now()) "
        "ON CONFLICT (server) DO UPDATE SET node_id = excluded.node_id, leader = excluded.leader, "
        "readings = excluded.readings, sampled_at = excluded.sampled_at",
        (server, node_id, leader, Jsonb(readings)))


def latest_readings(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Each server's latest sample, with its age in seconds."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT server, node_id, leader, readings, sampled_at, "
            "extract(epoch FROM now() - sampled_at)::float8 AS age_s FROM load_readings ORDER BY server").fetchall()


def forget_servers(conn: psycopg.Connection, servers: list[str]) -> None:
    conn.execute("DELETE FROM load_readings WHERE server = ANY(%s)", (servers,))


# -- configuration -------------------------------------------------------------------------------
def get_config(conn: psycopg.Connection) -> load.LoadConfig:
    return load.LoadConfig.build(read_document(conn, "load_config"))


def save_config(conn: psycopg.Connection, document: dict[str, Any]) -> load.LoadConfig:
    """Validate (`core.load.LoadConfig.build`: pydantic.ValidationError) and store a configuration."""
    config = load.LoadConfig.build(document)
    write_document(conn, "load_config", config.document())
    return config


# -- alarms ---------------------------------------------------------------------------------------
def active_alarms(conn: psycopg.Connection) -> dict[str, str]:
    """source -> severity of every active alarm."""
    return dict(conn.execute("SELECT source, severity FROM alarms WHERE cleared_at IS NULL").fetchall())


def raise_alarm(conn: psycopg.Connection, t: load.Transition) -> int | None:
    """Raise `t`'s alarm and write its event, in one statement; None if it was already active."""
    event = alarm_event(t.source, True, t.severity, t.message, t.value, t.threshold)
    row = conn.execute(
        "WITH raised AS (INSERT INTO alarms (source, severity, message, details) VALUES (%(source)s, "
        "%(severity)s, %(message)s, %(details)s) ON CONFLICT (source) WHERE cleared_at IS NULL DO NOTHING "
        "RETURNING id, created_at), "
        "ev AS (INSERT INTO event_outbox (topic, key, payload) SELECT %(topic)s, %(key)s, "
        "jsonb_build_array(%(event)s::jsonb || jsonb_build_object('alarm_id', id, 'at', created_at)) FROM raised) "
        "SELECT id FROM raised",
        {"source": t.source, "severity": t.severity, "message": t.message,
         "details": Jsonb({**t.details(), "raise_at": t.threshold}), "topic": ALARMS_TOPIC,
         "key": alarm_key(t.source), "event": orjson.dumps(event).decode()}).fetchone()
    return row[0] if row else None


def clear_alarm(conn: psycopg.Connection, t: load.Transition) -> int | None:
    """Clear `t`'s alarm and write its event, in one statement; None if none was active."""
    return _clear(conn, t.source, t.severity, t.message, t.value, t.threshold)


def clear_sources(conn: psycopg.Connection, sources: list[str], why: str) -> list[int]:
    """Clear the active alarms of `sources` (a server gone), each with its event."""
    out = []
    for source, severity in conn.execute("SELECT source, severity FROM alarms WHERE cleared_at IS NULL "
                                         "AND source = ANY(%s)", (sources,)).fetchall():
        cleared = _clear(conn, source, severity, f"{source}: {why}", None, None)
        if cleared is not None:
            out.append(cleared)
    return out


def _clear(conn: psycopg.Connection, source: str, severity: str, message: str, value: float | None,
           threshold: float | None) -> int | None:
    event = alarm_event(source, False, severity, message, value, threshold)
    row = conn.execute(
        "WITH cleared AS (UPDATE alarms SET cleared_at = now(), details = details || %(more)s "
        "WHERE source = %(source)s AND cleared_at IS NULL RETURNING id, severity, cleared_at), "
        "ev AS (INSERT INTO event_outbox (topic, key, payload) SELECT %(topic)s, %(key)s, "
        "jsonb_build_array(%(event)s::jsonb || jsonb_build_object('alarm_id', id, 'severity', severity, "
        "'at', cleared_at)) FROM cleared) "
        "SELECT id FROM cleared",
        {"source": source, "more": Jsonb({"cleared_value": value, "clear_below": threshold,
                                          "cleared_message": message}),
         "topic": ALARMS_TOPIC, "key": alarm_key(source), "event": orjson.dumps(event).decode()}).fetchone()
    return row[0] if row else None


def alarms(conn: psycopg.Connection, state: str = "all", *, before: int | None = None,
           limit: int = 1000) -> list[dict[str, Any]]:
    """Alarms newest first (by id descending: a page's cursor), with an id below `before` if
    given, at most `limit`; `state`: active, cleared or all."""
    where = ["cleared_at IS NULL"] if state == "active" else ["cleared_at IS NOT NULL"] if state == "cleared" else []
    params: list[Any] = []
    if before is not None:
        where, params = where + ["id < %s"], [before]
    sql_where = f"WHERE {' AND '.join(where)}" if where else ""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT id, source, severity, message, details, created_at, cleared_at FROM alarms {sql_where} "
            "ORDER BY id DESC LIMIT %s", (*params, limit)).fetchall()
    for r in rows:
        metric, server = load.parse_source(r["source"])
        r.update(state="active" if r["cleared_at"] is None else "cleared", metric=metric, server=server,
                 component=load.component(metric))
    return rows


# -- what everyone obeys ----------------------------------------------------------------------------
def restrictions(conn: psycopg.Connection) -> load.Restrictions:
    """The restrictions in force: the active alarms under the stored configuration (one round trip)."""
    row = conn.execute("SELECT (SELECT config FROM load_config WHERE id = 1), "
                       "(SELECT coalesce(array_agg(source), '{}') FROM alarms WHERE cleared_at IS NULL)").fetchone()
    return load.restrictions(row[1], load.LoadConfig.build(row[0]))


class CachedRestrictions:
    """`restrictions(conn)` read at most every `ttl_s` seconds (for a loop that asks often);
    on a failed read the last answer stands (none imposed before the first)."""

    def __init__(self, connect, ttl_s: float = 1.0):
        self.connect, self.ttl_s = connect, ttl_s
        self.conn: psycopg.Connection | None = None
        self.value, self.at = load.NONE, 0.0

    def __call__(self) -> load.Restrictions:
        if time.monotonic() - self.at >= self.ttl_s:
            self.at = time.monotonic()
            try:
                if self.conn is None or self.conn.closed or self.conn.broken:
                    self.conn = self.connect()
                self.value = restrictions(self.conn)
            except Exception:      # noqa: BLE001 — the database away: the last answer stands
                pass
        return self.value


class LoadStore(Store):
    """A load monitor's connection and statements."""

    def __init__(self, conn: psycopg.Connection):
        super().__init__(conn)
        self.leading = False

    def lead(self) -> bool:
        """True while this session holds the leader lock (tried until it does)."""
        if not self.leading:
            self.leading = bool(self.conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)).fetchone()[0])
        return self.leading

    def config(self) -> load.LoadConfig:
        return get_config(self.conn)

    def database_readings(self, long_query_s: float) -> dict[str, float]:
        return database_readings(self.conn, long_query_s)

    def pom_readings(self) -> dict[str, float]:
        return pom_readings(self.conn)

    def active_alarms(self) -> dict[str, str]:
        return active_alarms(self.conn)

    def apply(self, transitions: list[load.Transition]) -> None:
        for t in transitions:
            (raise_alarm if t.raised else clear_alarm)(self.conn, t)

    def record(self, server: str, node_id: str, leader: bool, readings: dict[str, float]) -> None:
        record_readings(self.conn, server, node_id, leader, readings)

    def sample_ages(self) -> dict[str, float]:
        return {r["server"]: r["age_s"] for r in latest_readings(self.conn)}

    def retire_servers(self, servers: list[str], why: str) -> None:
        """Servers gone: their alarms cleared (with events) and their readings removed."""
        prefix = [load.alarm_source(m, s) for s in servers for m in load.SERVER_METRICS]
        with self.conn.transaction():
            clear_sources(self.conn, prefix, why)
            forget_servers(self.conn, servers)

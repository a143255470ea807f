"""The load monitor (docs/operations.md, "Load monitor"): alarms, the current readings of every
POM server with the levels and the restrictions in force, and the thresholds.

Everything is read from PostgreSQL (the monitors write their samples, alarms and events
there), so these routes need no actor. Roles (api/app.py): reads for staff, the
configuration's change for admins."""
from __future__ import annotations

from typing import Any, Literal

import psycopg
from fastapi import APIRouter, Body, Depends, Query

from pom_actors.core import load as core
from pom_actors.store import load as store

from .. import deps
from ..pages import NewestFirst

router = APIRouter(tags=["load"])
# /load's active alarms, newest first: at most one per source (metric and server) is active, so
# this is a bound, not a page.
ACTIVE_ALARMS = 1000


@router.get("/alarms")
def list_alarms(state: Literal["active", "cleared", "all"] = Query("all"), page: NewestFirst = Depends(),
                conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of alarms, newest first (by id descending; `?before=ID` and `Link: rel="next"`,
    api/pages.py): the active ones only with `state=active`."""
    return page.link(store.alarms(conn, state, before=page.before, limit=page.limit))


@router.get("/load")
def get_load(conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """Each server's latest readings (the leading monitor's also carry the database's and POM's),
    the level of each component, the active alarms and the restrictions they impose."""
    config = store.get_config(conn)
    servers, database, pom = [], {}, {}
    for row in store.latest_readings(conn):
        readings = row["readings"]
        if row["leader"]:
            database = {k: v for k, v in readings.items() if k.startswith("database.")}
            pom = {k: v for k, v in readings.items() if k.startswith("pom.")}
        servers.append({"server": row["server"], "node_id": row["node_id"], "leader": row["leader"],
                        "sampled_at": row["sampled_at"], "age_s": round(row["age_s"], 3),
                        "stale": row["age_s"] > 3 * config.sample_s,
                        "readings": {k: v for k, v in readings.items() if k.startswith("server.")}})
    active = store.active_alarms(conn)
    return {"servers": servers, "database": database, "pom": pom, "levels": core.levels(active),
            "alarms": store.alarms(conn, "active", limit=ACTIVE_ALARMS),
            "restrictions": core.restrictions(active, config).to_dict(),
            "sample_s": config.sample_s}


@router.get("/load/config")
def get_config(conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return store.get_config(conn).document()


@router.put("/load/config")
def put_config(body: dict[str, Any] = Body(...), conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """Replace the configuration: what the document leaves out takes the defaults (a metric's
    missing fields too); a bad one is a 422 with the path of every fault. The monitors take it
    at their next sample."""
    return store.save_config(conn, body).document()

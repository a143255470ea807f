"""Zones (docs/operations.md, "Zones"): list and read them with their live servers and jobs,
create, change the failover, set the state (up, down, maintenance), delete.

The rows are PostgreSQL's; the live servers per zone are the director's (it reads them from
Ray every tick): without an answer from it they are `null`, and the rest is still served.
The director moves the jobs of a zone that goes down at its next tick. Roles (api/app.py):
reads for staff, changes for admins."""
from __future__ import annotations

from typing import Annotated, Optional

import psycopg
from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, Field, StringConstraints

from pom_actors.config import Settings
from pom_actors.core.zones import NAME, Zone, ZoneState, status
from pom_actors.store import zones as store

from .. import deps
from ..validation import Text

router = APIRouter(tags=["zones"])
ZoneName = Annotated[str, StringConstraints(pattern=f"^{NAME.pattern}$")]
PathName = Annotated[str, Path(pattern=f"^{NAME.pattern}$", description="zone name")]


class ZoneCreate(BaseModel):
    name: ZoneName
    failover_zone: Optional[ZoneName] = Field(default=None, description="where its jobs go when it is not available")
    state: ZoneState = ZoneState.UP
    reason: Text = Field(default="", max_length=500)


class ZoneUpdate(BaseModel):
    failover_zone: Optional[ZoneName] = Field(description="the new failover zone; null: none")


class ZoneStateChange(BaseModel):
    state: ZoneState
    reason: Text = Field(default="", max_length=500, description="why (shown with the zone, audited)")


def _view(row: dict, servers: dict | None, jobs: dict[str, dict[str, int]]) -> dict:
    live = None if servers is None else servers["zones"].get(row["name"], 0)
    zone = Zone(row["name"], ZoneState(row["state"]), row["failover_zone"])
    return {**row, "servers": live,
            "status": None if live is None else status(zone, {zone.name: live}),
            "jobs": jobs.get(row["name"], {"placed": 0, "waiting": 0})}


@router.get("/zones")
def list_zones(conn: psycopg.Connection = Depends(deps.db), servers: dict | None = Depends(deps.zone_servers),
               settings: Settings = Depends(deps.settings)) -> dict:
    """Every zone with its live servers and `status` (`down` when up with none alive), and its
    active jobs: placed there, or waiting (their zone and its failovers unavailable)."""
    jobs = store.placements(conn)
    return {"zones": [_view(r, servers, jobs) for r in store.zones(conn)], "default_zone": settings.default_zone,
            "unzoned_servers": None if servers is None else servers["unzoned"]}


@router.get("/zones/{name}")
def get_zone(name: PathName, conn: psycopg.Connection = Depends(deps.db),
             servers: dict | None = Depends(deps.zone_servers)) -> dict:
    return _view(store.zone(conn, name), servers, store.placements(conn))


@router.post("/zones", status_code=201)
def create_zone(body: ZoneCreate, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """A new zone; its failover must exist and must not lead back to it (422)."""
    return store.create(conn, body.name, body.failover_zone, body.state, body.reason)


@router.put("/zones/{name}")
def update_zone(name: PathName, body: ZoneUpdate, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return store.update(conn, name, failover=body.failover_zone, set_failover=True)


@router.post("/zones/{name}/state")
def set_zone_state(name: PathName, body: ZoneStateChange, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """Set a zone up, down or in maintenance: the director moves its jobs at its next tick
    (to the failover zone, or back home), draining their attempts first."""
    return store.update(conn, name, state=body.state, reason=body.reason)


@router.delete("/zones/{name}", status_code=204)
def delete_zone(name: PathName, conn: psycopg.Connection = Depends(deps.db),
                settings: Settings = Depends(deps.settings)) -> Response:
    """409 for the default zone, and for one a campaign, a job not ended or another zone's
    failover names."""
    store.delete(conn, name, settings.default_zone)
    return Response(status_code=204)

"""Campaigns: a strategy over a contact list, with finish criteria, a schedule and a priority."""
from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from pom_actors.core.finish import FinishCriteria
from pom_actors.core.schedule import Schedule
from pom_actors.store import catalog

from .. import deps
from ..validation import CleanJson, Id, Text
from .zones import ZoneName

router = APIRouter(tags=["campaigns"])


class CampaignCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    strategy_id: Id
    list_id: Id
    description: Text = ""
    finish: Annotated[FinishCriteria, CleanJson] = FinishCriteria()
    schedule: Annotated[Schedule | None, CleanJson] = None
    priority: int = Field(default=5, ge=1, le=10)
    filter_id: Id | None = Field(default=None, description="a filter template (checked against the list)")
    zone: ZoneName | None = Field(default=None, description="the zone its jobs run in (default: the default zone)")


@router.post("/campaigns", status_code=201)
def create_campaign(body: CampaignCreate, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    with conn.transaction():
        cid = catalog.create_campaign(
            conn, body.name, body.strategy_id, body.list_id, description=body.description,
            finish=body.finish.model_dump(mode="json", exclude_none=True, exclude_defaults=True),
            schedule=body.schedule.model_dump(mode="json") if body.schedule else None,
            priority=body.priority, filter_id=body.filter_id, zone=body.zone)
    return catalog.campaign(conn, cid)


@router.get("/campaigns")
def list_campaigns(conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    return catalog.campaigns(conn)

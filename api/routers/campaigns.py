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
from ..pages import Page
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
def list_campaigns(enabled: bool | None = None, page: Page = Depends(),
                   conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of campaigns by id (api/pages.py), only the enabled (or disabled) ones if asked."""
    return page.link(catalog.campaigns(conn, after=page.after, limit=page.limit, enabled=enabled))


class CampaignChange(BaseModel):
    """The fields to change (those not sent stay); `schedule: null` removes the schedule."""
    description: Text | None = None
    priority: int | None = Field(default=None, ge=1, le=10)
    enabled: bool | None = Field(default=None, description="false: its schedule starts no job and no job "
                                                           "can be created until it is enabled again")
    finish: Annotated[FinishCriteria | None, CleanJson] = None
    schedule: Annotated[Schedule | None, CleanJson] = None


@router.get("/campaigns/{campaign_id}")
def get_campaign(campaign_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return catalog.campaign(conn, campaign_id)


@router.patch("/campaigns/{campaign_id}")
def update_campaign(campaign_id: Id, body: CampaignChange, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    changes = body.model_dump(mode="json", exclude_unset=True)
    for field in ("description", "priority", "enabled", "finish"):
        if field in changes and changes[field] is None:
            changes.pop(field)                   # null means "unchanged" but for the schedule
    return catalog.update_campaign(conn, campaign_id, changes)


@router.delete("/campaigns/{campaign_id}", status_code=204)
def delete_campaign(campaign_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> None:
    """409 while one of its jobs has not ended; its ended jobs go with it (the ledger stays)."""
    catalog.delete_campaign(conn, campaign_id)

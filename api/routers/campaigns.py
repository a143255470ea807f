"""Campaigns: a strategy over contact lists (each with a priority and a sort order), with finish
criteria, a schedule and a priority."""
from __future__ import annotations

from typing import Annotated, Literal

import psycopg
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from pom_actors.core import dialling as D
from pom_actors.core.finish import FinishCriteria
from pom_actors.core.schedule import Schedule
from pom_actors.store import catalog, dialling

from .. import deps
from ..pages import Page
from ..validation import CleanJson, Description, Id, Text
from .zones import ZoneName

router = APIRouter(tags=["campaigns"])


class SortKeyIn(BaseModel):
    """One key of a list's sort order (core/dialling.py)."""
    model_config = ConfigDict(extra="forbid")
    field: Text = Field(max_length=210, description="a contact field (external_id, first_name, last_name, phone1, "
                                                     "phone2, email, created_at) or attr.NAME")
    type: Literal[D.ATTRIBUTE_TYPES] | None = Field(default=None, description="how an attribute is read "
                                                                               "(default text)")
    order: Literal[D.DIRECTIONS] = "asc"


class CampaignListIn(BaseModel):
    """A contact list of the campaign: higher priority lists are dialled first."""
    model_config = ConfigDict(extra="forbid")
    list_id: Id
    priority: int = Field(default=D.PRIORITY_DEFAULT, ge=D.PRIORITY_MIN, le=D.PRIORITY_MAX)
    sort: list[SortKeyIn] = Field(default_factory=list, max_length=D.MAX_SORT_KEYS)


Lists = Annotated[list[CampaignListIn], Field(min_length=1, max_length=D.MAX_LISTS)]


def _lists(lists: list[CampaignListIn]) -> list[dict]:
    return [entry.model_dump(exclude_none=True) for entry in lists]


def with_lists(conn: psycopg.Connection, rows: list[dict]) -> list[dict]:
    """Campaign rows with their lists (`lists`), the highest priority first."""
    found = dialling.lists_of(conn, [r["id"] for r in rows])
    return [{**r, "lists": found[r["id"]]} for r in rows]


class CampaignCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    strategy_id: Id
    list_id: Id | None = Field(default=None, description="its one list (or give `lists`)")
    lists: Lists | None = Field(default=None, description="its lists with their priorities and sort orders")
    description: Description = ""
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
            priority=body.priority, filter_id=body.filter_id, zone=body.zone,
            lists=_lists(body.lists) if body.lists is not None else None)
    return with_lists(conn, [catalog.campaign(conn, cid)])[0]


@router.get("/campaigns")
def list_campaigns(enabled: bool | None = None, page: Page = Depends(),
                   conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of campaigns by id (api/pages.py), only the enabled (or disabled) ones if asked."""
    return page.link(with_lists(conn, catalog.campaigns(conn, after=page.after, limit=page.limit, enabled=enabled)))


class CampaignChange(BaseModel):
    """The fields to change (those not sent stay); `schedule: null` removes the schedule."""
    description: Description | None = None
    priority: int | None = Field(default=None, ge=1, le=10)
    enabled: bool | None = Field(default=None, description="false: its schedule starts no job and no job "
                                                           "can be created until it is enabled again")
    finish: Annotated[FinishCriteria | None, CleanJson] = None
    schedule: Annotated[Schedule | None, CleanJson] = None
    lists: Lists | None = Field(default=None, description="its lists, all of them (jobs created after the change "
                                                          "dial these)")
    strategy_id: Id | None = Field(default=None, description="the strategy version jobs created after the change "
                                                             "run (its custom codes are added)")


@router.get("/campaigns/{campaign_id}")
def get_campaign(campaign_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return with_lists(conn, [catalog.campaign(conn, campaign_id)])[0]


@router.patch("/campaigns/{campaign_id}")
def update_campaign(campaign_id: Id, body: CampaignChange, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    changes = body.model_dump(mode="json", exclude_unset=True)
    for field in ("description", "priority", "enabled", "finish", "lists", "strategy_id"):
        if field in changes and changes[field] is None:
            changes.pop(field)                   # null means "unchanged" but for the schedule
    if "lists" in changes:
        changes["lists"] = _lists(body.lists)
    return with_lists(conn, [catalog.update_campaign(conn, campaign_id, changes)])[0]


@router.delete("/campaigns/{campaign_id}", status_code=204)
def delete_campaign(campaign_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> None:
    """409 while one of its jobs has not ended; its ended jobs go with it (the ledger stays)."""
    catalog.delete_campaign(conn, campaign_id)

"""Strategies: each document validated and stored as the next version of its name, never edited;
the versions listed (all or one name's), read whole, and deleted while nothing uses them."""
from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Body, Depends, Query

from pom_actors.config import Settings
from pom_actors.core.outbound import OutboundPolicy
from pom_actors.core.strategy import STANDARD_ATTRIBUTES
from pom_actors.store import catalog
from pom_actors.store import strategies as store

from .. import deps
from ..pages import Page
from ..validation import CleanJson, Id, Text

router = APIRouter(tags=["strategies"])


@router.post("/strategies", status_code=201)
def create_strategy(document: Annotated[dict[str, Any], CleanJson, Body(media_type="application/json")],
                    list_id: Id | None = None, conn: psycopg.Connection = Depends(deps.db),
                    settings: Settings = Depends(deps.settings)) -> dict:
    """A custom handler's webhook URL must meet the outbound policy (POM_OUTBOUND_ALLOW)."""
    attributes = None if list_id is None else (
        set(catalog.list_attributes(conn, list_id)) | set(STANDARD_ATTRIBUTES))
    policy = OutboundPolicy.from_setting(settings.outbound_allow)
    sid, strategy = catalog.save_strategy(conn, document, attributes, policy)
    return {"id": sid, "name": strategy.name, "version": strategy.version}


@router.get("/strategies")
def list_strategies(name: Annotated[Text | None, Query(max_length=200, description="only this name's versions")] = None,
                    page: Page = Depends(), conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of versions by id (api/pages.py), each with `latest`, its name's newest version."""
    return page.link(store.rows(conn, name, after=page.after, limit=page.limit))


@router.get("/strategies/{strategy_id}")
def get_strategy(strategy_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """The version with its stored `document` and the `source` uploaded."""
    return store.row(conn, strategy_id)


@router.delete("/strategies/{strategy_id}", status_code=204)
def delete_strategy(strategy_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> None:
    """409 while a campaign uses the version or a job ran with it."""
    store.delete(conn, strategy_id)

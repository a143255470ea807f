"""Strategies: each document validated and stored as the next version of its name."""
from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Body, Depends

from pom_actors.config import Settings
from pom_actors.core.outbound import OutboundPolicy
from pom_actors.core.strategy import STANDARD_ATTRIBUTES
from pom_actors.store import catalog

from .. import deps
from ..validation import CleanJson, Id

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

"""Agent scripts (core/scripts.py): list, read, create, change (disable with `enabled: false`),
delete — not one a campaign's strategy names. A strategy's handler names one with
`script: {name: ...}`; a job's managers read it when they start, so a change shows in jobs
started afterwards. Roles (api/app.py): reads for staff, changes for admin and integration."""
from __future__ import annotations

from typing import Literal

import psycopg
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from pom_actors.config import Settings
from pom_actors.core.outbound import OutboundPolicy
from pom_actors.core.scripts import NAME, SCRIPT_TEXT_MAX, check_script
from pom_actors.store import scripts as store

from .. import deps
from ..pages import Page
from ..validation import Id, Text

router = APIRouter(tags=["agent scripts"])


class ScriptChange(BaseModel):
    """The fields to change (those not sent stay)."""
    model_config = ConfigDict(extra="forbid")
    name: Text | None = Field(default=None, max_length=64, description=f"matching {NAME.pattern}")
    kind: Literal["text", "url"] | None = Field(default=None, description="text: shown; url: opened by the desktop")
    body: Text | None = Field(default=None, max_length=SCRIPT_TEXT_MAX,
                              description="a template over the contact's attributes ({first_name})")
    description: Text | None = Field(default=None, max_length=1000)
    enabled: bool | None = Field(default=None, description="false: jobs started afterwards show no script")


class ScriptCreate(ScriptChange):
    name: Text = Field(max_length=64, description=f"matching {NAME.pattern}")
    kind: Literal["text", "url"] = "text"
    body: Text = Field(max_length=SCRIPT_TEXT_MAX)
    description: Text = Field(default="", max_length=1000)
    enabled: bool = True


def _policy(settings: Settings) -> OutboundPolicy:
    return OutboundPolicy.from_setting(settings.outbound_allow)


@router.get("/agent-scripts")
def list_scripts(enabled: bool | None = None, page: Page = Depends(),
                 conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of scripts by id (api/pages.py), only the enabled (or disabled) ones if asked."""
    return page.link(store.scripts(conn, after=page.after, limit=page.limit, enabled=enabled))


@router.get("/agent-scripts/{script_id}")
def get_script(script_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return store.script(conn, script_id)


@router.post("/agent-scripts", status_code=201)
def create_script(body: ScriptCreate, conn: psycopg.Connection = Depends(deps.db),
                  settings: Settings = Depends(deps.settings)) -> dict:
    """422 at `body` for a malformed placeholder, an over-long body or (a URL) an address the
    outbound policy refuses (POM_OUTBOUND_ALLOW); 409 for a name taken."""
    return store.create(conn, check_script(body.name, body.kind, body.body, _policy(settings)),
                        body.description, body.enabled)


@router.patch("/agent-scripts/{script_id}")
def update_script(script_id: Id, body: ScriptChange, conn: psycopg.Connection = Depends(deps.db),
                  settings: Settings = Depends(deps.settings)) -> dict:
    """A new name, kind or body is checked as at creation; 409 for renaming one a campaign's
    strategy names."""
    given = body.model_dump(exclude_unset=True, exclude_none=True)
    changed = None
    if given.keys() & {"name", "kind", "body"}:
        merged = {**store.script(conn, script_id), **given}
        changed = check_script(merged["name"], merged["kind"], merged["body"], _policy(settings))
    return store.update(conn, script_id, changed,
                        **{k: v for k, v in given.items() if k in ("description", "enabled")})


@router.delete("/agent-scripts/{script_id}", status_code=204)
def delete_script(script_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> Response:
    """409 for a script a campaign's strategy names."""
    store.delete(conn, script_id)
    return Response(status_code=204)

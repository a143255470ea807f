"""Completion codes: the system's (read-only) and each campaign's custom codes — list, read,
create, change their flags, disable/enable, delete (not one its strategy declares: its results
name it). A disabled code is still listed and reported, and its strategy still routes on it,
but agents are not offered it and an attempt's code cannot be set to it.

A job's managers read the campaign's codes when they start, so a code added or changed here
is offered to agents, and its flags drive the next step, in jobs started afterwards; setting
an attempt's code (web services) sees it at once. Roles (api/app.py): reads for staff,
changes for admin and integration."""
from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pom_actors.core.codes import CODE_NAME, FLAGS, custom_code
from pom_actors.store import codes as store

from .. import deps
from ..pages import Page
from ..validation import Id

router = APIRouter(tags=["completion codes"])
CodeName = Annotated[str, StringConstraints(pattern=CODE_NAME.pattern)]


class CodeFlags(BaseModel):
    """What an outcome with the code implies (pom_actors/core/codes.py); unset: unchanged."""
    model_config = ConfigDict(extra="forbid")
    final: bool | None = Field(default=None, description="conclusive for the contact")
    contact_uncallable: bool | None = Field(default=None, description="no further attempt on the contact in the job")
    address_uncallable: bool | None = Field(default=None, description="this address is useless; move on")
    human_contact: bool | None = Field(default=None, description="a person was reached")
    counts_as_abandon: bool | None = Field(default=None, description="counts toward the abandon rate")

    def given(self) -> dict[str, bool]:
        return {k: v for k, v in self.model_dump(exclude_unset=True).items() if k in FLAGS and v is not None}


class CodeChange(CodeFlags):
    enabled: bool | None = Field(default=None, description="false: not offered to agents nor settable")

    def given(self) -> dict[str, bool]:
        return {**super().given(), **({"enabled": self.enabled} if self.enabled is not None else {})}


class CodeCreate(CodeFlags):
    campaign_id: Id
    name: CodeName = Field(description="not a system code's, nor `default`")


@router.get("/completion-codes")
def list_codes(campaign_id: Id | None = None, system: bool | None = None, enabled: bool | None = None,
               page: Page = Depends(), conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of codes by id (api/pages.py): a campaign's custom codes, the system's
    (`system=true`) or every custom code (`system=false`); only enabled (or disabled) ones."""
    return page.link(store.codes(conn, campaign_id=campaign_id, system=system, enabled=enabled,
                                 after=page.after, limit=page.limit))


@router.get("/completion-codes/{code_id}")
def get_code(code_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return store.code(conn, code_id)


@router.post("/completion-codes", status_code=201)
def create_code(body: CodeCreate, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """A custom code of a campaign; 409 for a name the campaign has already."""
    return store.create(conn, body.campaign_id, custom_code(body.name, **body.given()))


@router.patch("/completion-codes/{code_id}")
def update_code(code_id: Id, body: CodeChange, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """Change a custom code's flags or disable/enable it (409 for a system code)."""
    return store.update(conn, code_id, body.given())


@router.delete("/completion-codes/{code_id}", status_code=204)
def delete_code(code_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> Response:
    """409 for a system code and for one the campaign's strategy declares."""
    store.delete(conn, code_id)
    return Response(status_code=204)

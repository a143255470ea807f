"""API tokens (admin only, api/app.py): create (the value is in this answer and nowhere else),
list (never the values or their hashes), revoke."""
from __future__ import annotations

from typing import Annotated, Optional

import psycopg
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field, model_validator

from pom_actors.core.tokens import Role
from pom_actors.store import auth as store

from .. import deps
from ..pages import Page
from ..validation import Id, Text

router = APIRouter(tags=["tokens"])


class TokenCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    role: Role
    agent_id: Optional[Id] = Field(default=None, description="the agent an agent token acts as (agent role only)")

    @model_validator(mode="after")
    def _agent(self) -> "TokenCreate":
        if self.role == Role.AGENT and self.agent_id is None:
            raise ValueError("an agent token needs agent_id")
        if self.role != Role.AGENT and self.agent_id is not None:
            raise ValueError("only an agent token has an agent_id")
        return self


@router.post("/tokens", status_code=201)
def create_token(body: TokenCreate, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """A new token; `token` is its value, shown this once."""
    row, value = store.create_token(conn, body.name, body.role, body.agent_id)
    return {**row, "token": value}


@router.get("/tokens")
def list_tokens(role: Annotated[Role | None, Query(description="only tokens of this role")] = None,
                revoked: Annotated[bool | None, Query(description="only the revoked (true) or the others (false)")]
                = None, page: Page = Depends(), conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of tokens by id (api/pages.py), of a role, revoked or not, if asked."""
    return page.link(store.tokens(conn, role=None if role is None else role.value, revoked=revoked,
                                  after=page.after, limit=page.limit))


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: Id, request: Request, conn: psycopg.Connection = Depends(deps.db)) -> Response:
    """Revoke a token: refused at once by this gateway process, by the others within the
    token cache's 5 s. 409 for the last admin token that is not revoked."""
    store.revoke_token(conn, token_id)
    request.app.state.token_cache.forget(token_id)
    return Response(status_code=204)

"""Web services for external applications (an IVR, a self-service portal) during a call: a
contact by its id or by an attempt's, its attributes changed (core.attributes: a bounded
one-level merge patch), the contact deleted, the attempt in flight for a contact, an attempt
read, and the completion code of a settled attempt set (one of its campaign's codes, custom
ones included).

Roles (api/app.py): admin and integration. Each change is in the audit log like any other
(api/auth.py).
"""
from __future__ import annotations

from typing import Annotated, Any

import psycopg
from annotated_types import Ge, Le
from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, Field

from pom_actors.store import contacts as store
from pom_actors.store.catalog import NotFound

from .. import deps
from ..validation import BIGINT_MAX, INT4_MAX, CleanJson, Text

router = APIRouter(tags=["web services"])

ContactId = Annotated[int, Ge(1), Le(BIGINT_MAX)]
AttemptId = Annotated[str, Path(pattern=r"^[1-9][0-9]{0,17}\.[1-9][0-9]{0,8}$",
                                description="`<work item id>.<attempt number>`, as in orders and webhooks")]
Attributes = Annotated[dict[str, Any], CleanJson]


class CodeChange(BaseModel):
    code: Text = Field(min_length=1, max_length=100, description="one of the campaign's completion codes")


def _attempt_key(attempt_id: str) -> tuple[int, int]:
    item, number = attempt_id.split(".")
    if int(number) > INT4_MAX:                     # the pattern bounds the digits, not the value
        raise NotFound(f"attempt {attempt_id} does not exist")
    return int(item), int(number)


@router.get("/contacts/{contact_id}")
def get_contact(contact_id: ContactId, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return store.contact(conn, contact_id)


@router.delete("/contacts/{contact_id}", status_code=204)
def delete_contact(contact_id: ContactId, conn: psycopg.Connection = Depends(deps.db)) -> Response:
    """No job dials it again (its work items in jobs not ended are done); 409 while it has an
    attempt in flight."""
    store.delete_contact(conn, contact_id)
    return Response(status_code=204)


@router.patch("/contacts/{contact_id}/attributes")
def patch_contact_attributes(contact_id: ContactId, attributes: Attributes,
                             conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """A key with a value sets it, a key with `null` removes it; the contact as it now is."""
    return store.patch_attributes(conn, contact_id, attributes)


@router.get("/contacts/{contact_id}/attempt")
def current_attempt(contact_id: ContactId, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """`attempt`: the contact's attempt in flight, or null when none is."""
    return {"contact_id": contact_id, "attempt": store.current_attempt(conn, contact_id)}


@router.get("/attempts/{attempt_id}")
def get_attempt(attempt_id: AttemptId, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return store.attempt(conn, *_attempt_key(attempt_id))


@router.get("/attempts/{attempt_id}/contact")
def get_attempt_contact(attempt_id: AttemptId, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return store.contact(conn, store.attempt(conn, *_attempt_key(attempt_id))["contact_id"])


@router.patch("/attempts/{attempt_id}/contact/attributes")
def patch_attempt_contact_attributes(attempt_id: AttemptId, attributes: Attributes,
                                     conn: psycopg.Connection = Depends(deps.db)) -> dict:
    contact_id = store.attempt(conn, *_attempt_key(attempt_id))["contact_id"]
    return store.patch_attributes(conn, contact_id, attributes)


@router.put("/attempts/{attempt_id}/code")
def set_attempt_code(attempt_id: AttemptId, body: CodeChange, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """409 while the attempt is in flight or when a rule refused it (never sent)."""
    return store.set_code(conn, *_attempt_key(attempt_id), body.code)

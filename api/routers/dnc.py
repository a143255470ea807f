"""DNC lists (docs/api.md, "DNC lists"): create, list, delete; add, remove and page entries;
look addresses up; attach lists to campaigns (several per campaign). A DNC list is checked by
the rule engine before every attempt of the campaigns it applies to, from the next batch on.

Addresses are normalised as contact addresses are (phones to E.164 in `region`, e-mail
addresses lower-cased: `core.imports.dnc`); a request holding a bad one changes nothing and is
a 422 naming each (`addresses.<index>`). At most `MAX_BATCH` addresses or contacts per request
(a file goes through a DNC import: `POST /dnc-lists/{id}/imports`, api/routers/imports.py).

Roles (api/app.py gives the router read: staff, write: run-time changes): adding entries is a
run-time change (admin, supervisor, integration: honouring an opt-out at once); a lookup is a
read sent as POST (staff); lists, removals and attachments are definitions (admin, integration).
"""
from __future__ import annotations

from typing import Annotated, Any

import psycopg
import pydantic
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from pom_actors.core.imports.dnc import normalise_addresses
from pom_actors.store import dnc as store

from .. import auth, deps
from ..pages import Named, Page
from ..auth import DEFINE
from ..validation import BIGINT_MAX, Description, Id, Text

router = APIRouter(tags=["dnc"])
MAX_BATCH = 10_000
ContactId = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
Region = Field(None, pattern=r"^[A-Za-z]{2}$", description="default region of numbers without a country prefix")


class DncListCreate(BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=200)
    description: Description = ""
    all_campaigns: bool = False


class Entries(BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    addresses: list[Text] = Field(default=[], max_length=MAX_BATCH)
    contact_ids: list[ContactId] = Field(default=[], max_length=MAX_BATCH)
    region: Text | None = Region


class Lookup(BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    addresses: list[Text] = Field(min_length=1, max_length=MAX_BATCH)
    region: Text | None = Region
    campaign_id: Id | None = Field(None, description="only the DNC lists that apply to this campaign")


def _normalised(addresses: list[str], region: str | None) -> list[str]:
    """The addresses in stored form; a 422 naming every bad one (nothing is changed)."""
    out, errors = normalise_addresses(addresses, region)
    if errors:
        raise pydantic.ValidationError.from_exception_data("DncAddresses", [
            {"type": "value_error", "loc": ("addresses", e["index"]), "input": addresses[e["index"]],
             "ctx": {"error": ValueError(e["message"])}} for e in errors])
    return out


@router.post("/dnc-lists", status_code=201, dependencies=[auth.allow(write=DEFINE)])
def create_list(body: DncListCreate, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return store.create_list(conn, body.name, body.description, body.all_campaigns)


@router.get("/dnc-lists")
def list_lists(name: Named = None, page: Page = Depends(), conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of DNC lists by id (api/pages.py)."""
    return page.link(store.lists(conn, name=name, after=page.after, limit=page.limit))


@router.get("/dnc-lists/{list_id}")
def get_list(list_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return store.get_list(conn, list_id)


@router.delete("/dnc-lists/{list_id}", status_code=204, dependencies=[auth.allow(write=DEFINE)])
def delete_list(list_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> Response:
    if list_id == store.SYSTEM_LIST:
        raise pydantic.ValidationError.from_exception_data("DncList", [
            {"type": "value_error", "loc": ("path", "list_id"), "input": list_id,
             "ctx": {"error": ValueError("the system DNC list cannot be deleted")}}])
    store.delete_list(conn, list_id)
    return Response(status_code=204)


@router.post("/dnc-lists/{list_id}/entries")
def add_entries(list_id: Id, body: Entries, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """Adds addresses and contacts; honoured by the next batch the rule engine checks."""
    addresses = _normalised(body.addresses, body.region)
    with conn.transaction():
        added = store.add_entries(conn, list_id, addresses, body.contact_ids)
    return {"list_id": list_id, "added": added, "already": len(set(addresses)) + len(set(body.contact_ids)) - added,
            "addresses": addresses}


@router.get("/dnc-lists/{list_id}/entries")
def list_entries(list_id: Id, after: int = Query(0, ge=0, le=2**63 - 1), limit: int = Query(1000, ge=1, le=MAX_BATCH),
                 conn: psycopg.Connection = Depends(deps.db)) -> dict:
    rows = store.entries(conn, list_id, after, limit)
    return {"entries": rows, "next": rows[-1]["id"] if len(rows) == limit else None}


@router.post("/dnc-lists/{list_id}/entries/remove", dependencies=[auth.allow(write=DEFINE)])
def remove_entries(list_id: Id, body: Entries, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    addresses = _normalised(body.addresses, body.region)
    with conn.transaction():
        return {"list_id": list_id, "removed": store.remove_entries(conn, list_id, addresses, body.contact_ids)}


@router.post("/dnc-lists/lookup")
def lookup(body: Lookup, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """Per address sent: its stored form and the DNC lists holding it (with `campaign_id`,
    those that apply to the campaign: `blocked` says whether its next attempt is refused)."""
    addresses = _normalised(body.addresses, body.region)
    found = store.lookup(conn, addresses, body.campaign_id)
    results: list[dict[str, Any]] = [{"input": raw, "address": a, "lists": found.get(a, []),
                                      "blocked": bool(found.get(a))} for raw, a in zip(body.addresses, addresses)]
    return {"campaign_id": body.campaign_id, "results": results}


@router.get("/campaigns/{campaign_id}/dnc-lists")
def campaign_lists(campaign_id: Id, page: Page = Depends(), conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of the DNC lists that apply to the campaign, by id (api/pages.py)."""
    return page.link(store.campaign_lists(conn, campaign_id, after=page.after, limit=page.limit))


@router.put("/campaigns/{campaign_id}/dnc-lists/{list_id}", dependencies=[auth.allow(write=DEFINE)])
def attach(campaign_id: Id, list_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """The list applies to the campaign's jobs, running ones too, from their next claims."""
    with conn.transaction():
        attached = store.attach(conn, campaign_id, list_id)
    return {"campaign_id": campaign_id, "list_id": list_id, "attached": True, "changed": attached}


@router.delete("/campaigns/{campaign_id}/dnc-lists/{list_id}", status_code=204,
               dependencies=[auth.allow(write=DEFINE)])
def detach(campaign_id: Id, list_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> Response:
    with conn.transaction():
        store.detach(conn, campaign_id, list_id)
    return Response(status_code=204)

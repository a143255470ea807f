"""Contact lists and their contacts: good rows land (COPY), bad rows come back by line; a list
read with its contacts page by page, renamed, and deleted with its contacts once nothing uses it."""
from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Body, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from pom_actors.core import attributes as attrs
from pom_actors.core.contacts import ContactRowError, parse_contacts
from pom_actors.store import catalog, imports
from pom_actors.store import lists as store

from .. import deps
from ..pages import Named, Page
from ..validation import Description, Id, Text, bounded_text, json_fault, printable

router = APIRouter(tags=["lists"])
MAX_ROWS = 10_000               # contact rows a POST /lists/{id}/contacts takes (as DNC entries a request)


class ListCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    description: Description = ""
    attributes: list[bounded_text(attrs.MAX_KEY_CHARS, 1)] = Field(  # type: ignore[valid-type]
        default=[], max_length=attrs.MAX_KEYS, description="the attribute names its contacts carry")


@router.post("/lists", status_code=201)
def create_list(body: ListCreate, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return {"id": catalog.create_list(conn, body.name, body.description, body.attributes),
            "name": body.name}


@router.get("/lists")
def list_lists(name: Named = None, page: Page = Depends(), conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of lists by id (api/pages.py), without contact counts (read one list for its count)."""
    return page.link(store.rows(conn, name=name, after=page.after, limit=page.limit))


@router.get("/lists/{list_id}")
def get_list(list_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """The list with its declared attributes and `contacts`, its number of contacts."""
    return store.row(conn, list_id)


class ListChange(BaseModel):
    """The fields to change (those not sent stay). Declared attributes are not changed here:
    strategies and filters were checked against them."""
    model_config = ConfigDict(extra="forbid")
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    description: Description | None = None


@router.patch("/lists/{list_id}")
def update_list(list_id: Id, body: ListChange, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """The list as it now is; 409 for a name another list has."""
    return store.update(conn, list_id, **body.model_dump(exclude_unset=True, exclude_none=True))


@router.delete("/lists/{list_id}", status_code=204)
def delete_list(list_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> Response:
    """The list, its contacts and its finished imports; 409 naming what still uses it (the
    campaigns dialling it, jobs not ended holding it, imports not finished into it, import
    schedules filling it). Contacts go in batches (store/lists.py says why)."""
    store.delete(conn, list_id)
    return Response(status_code=204)


@router.get("/lists/{list_id}/contacts")
def list_contacts(list_id: Id, page: Page = Depends(), conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of the list's contacts by id (api/pages.py)."""
    return page.link(store.contacts(conn, list_id, after=page.after, limit=page.limit))


@router.post("/lists/{list_id}/contacts")
def add_contacts(list_id: Id, rows: Annotated[list[dict[str, Any]], Body(max_length=MAX_ROWS)],
                 conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """At most `MAX_ROWS` rows a request (a larger load is an import, docs/imports.md)."""
    catalog.list_attributes(conn, list_id)
    good, errors = _parse(rows)
    # ON CONFLICT: a row whose external_id is already in the list (also one that a concurrent
    # upload stored a moment ago) is reported by its line; every other good row is stored
    with conn.transaction():
        merged = imports.merge(conn, list_id, good, policy="skip", want_lines=True)
    imported = merged.inserted
    errors += [{"line": line, "field": "external_id", "message": "already in this list"}
               for line in merged.duplicate_lines or ()]
    errors.sort(key=lambda e: e["line"])
    if errors:
        raise ContactRowError(errors, imported)
    return {"imported": imported, "errors": []}


def _parse(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """parse_contacts, after refusing each row holding a value PostgreSQL would refuse (a NUL,
    an unpaired surrogate, a number out of range) with its line and the field at fault. The
    row is refused whole and stays out of the batch (its external_id is not taken)."""
    faults: dict[int, dict[str, Any]] = {}
    for line, row in enumerate(rows, start=1):
        if (fault := json_fault(row)) is not None:
            path, message = fault
            faults[line] = {"line": line, "field": ".".join(printable(str(p)) for p in path),
                            "message": message}
    if not faults:
        return parse_contacts(rows)
    # a refused row is replaced by a non-row so that the lines of the others stay as sent
    good, errors = parse_contacts([None if line in faults else row
                                   for line, row in enumerate(rows, start=1)])
    errors = [faults.get(e["line"], e) for e in errors]
    return good, errors

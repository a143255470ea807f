"""Contact lists and their contacts: good rows land (COPY), bad rows come back by line."""
from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from pom_actors.core.contacts import ContactRowError, parse_contacts
from pom_actors.store import catalog

from .. import deps

router = APIRouter(tags=["lists"])


class ListCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    attributes: list[str] = []


@router.post("/lists", status_code=201)
def create_list(body: ListCreate, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return {"id": catalog.create_list(conn, body.name, body.description, body.attributes),
            "name": body.name}


@router.post("/lists/{list_id}/contacts")
def add_contacts(list_id: int, rows: list[dict[str, Any]],
                 conn: psycopg.Connection = Depends(deps.db)) -> dict:
    catalog.list_attributes(conn, list_id)
    good, errors = parse_contacts(rows)
    taken = catalog.existing_external_ids(conn, list_id, [c["external_id"] for c in good])
    errors += [{"line": c["line"], "field": "external_id", "message": "already in this list"}
               for c in good if c["external_id"] in taken]
    errors.sort(key=lambda e: e["line"])
    good = [c for c in good if c["external_id"] not in taken]
    with conn.transaction():
        imported = catalog.add_contacts(conn, list_id, good)
    if errors:
        raise ContactRowError(errors, imported)
    return {"imported": imported, "errors": []}

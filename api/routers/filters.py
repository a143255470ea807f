"""Filter templates (docs/filters.md): named expressions a campaign takes; a list's preview;
the filter in force of a job, changed while it runs (its managers claim by it next).

Every expression is checked before it is stored: a bad one is a 422 `invalid_filter` with the
position of the fault (api/errors.py).

Roles (api/app.py gives the router read: staff, write: run-time changes): templates are
definitions (admin, integration); a preview is a read sent as POST (staff); a job's filter
is a run-time change (admin, supervisor, integration)."""
from __future__ import annotations

import psycopg
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from pom_actors.config import Settings
from pom_actors.core.clock import clock_from_spec
from pom_actors.store import filters as store

from .. import auth, deps
from ..pages import Named, Page
from ..auth import DEFINE
from ..validation import Description, Id, Text

router = APIRouter(tags=["filters"])


class FilterCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    expression: Text
    description: Description = ""


class FilterUpdate(BaseModel):
    expression: Text | None = None
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    description: Description | None = None


class Preview(BaseModel):
    expression: Text
    sample: int = Field(default=10, ge=0, le=store.MAX_SAMPLE)


class JobFilter(BaseModel):
    expression: Text | None


@router.post("/filters", status_code=201, dependencies=[auth.allow(write=DEFINE)])
def create_filter(body: FilterCreate, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return store.create_template(conn, body.name, body.expression, body.description)


@router.get("/filters")
def list_filters(name: Named = None, page: Page = Depends(), conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of filter templates by id (api/pages.py)."""
    return page.link(store.templates(conn, name=name, after=page.after, limit=page.limit))


@router.get("/filters/{filter_id}")
def get_filter(filter_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return store.template(conn, filter_id)


@router.put("/filters/{filter_id}", dependencies=[auth.allow(write=DEFINE)])
def update_filter(filter_id: Id, body: FilterUpdate, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    with conn.transaction():
        return store.update_template(conn, filter_id, expression=body.expression, name=body.name,
                                     description=body.description)


@router.delete("/filters/{filter_id}", status_code=204, dependencies=[auth.allow(write=DEFINE)])
def delete_filter(filter_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> Response:
    with conn.transaction():
        store.delete_template(conn, filter_id)
    return Response(status_code=204)


@router.post("/lists/{list_id}/preview")
def preview_list(list_id: Id, body: Preview, conn: psycopg.Connection = Depends(deps.db),
                 settings: Settings = Depends(deps.settings)) -> dict:
    """How many contacts of the list the expression selects now (business time), and a sample."""
    now = clock_from_spec(settings.clock).now()
    count, sample = store.preview(conn, list_id, body.expression, body.sample, now=now)
    return {"count": count, "sample": sample}


@router.get("/jobs/{job_id}/filter")
def get_job_filter(job_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return {"job_id": job_id, "expression": store.job_filter(conn, job_id)}


@router.put("/jobs/{job_id}/filter")
def set_job_filter(job_id: Id, body: JobFilter, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """Change the filter in force of a job that has not ended (null: none); its managers claim
    by it from their next lease renewal on."""
    with conn.transaction():
        return {"job_id": job_id, "expression": store.set_job_filter(conn, job_id, body.expression)}

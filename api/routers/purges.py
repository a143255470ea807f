"""Purges (docs/operations.md, "Retention and purges"): the runs (scheduled by the director or
asked for here) with their cut-offs and counts, an on-demand purge, and the retention config.
Reads for supervisors and admins, changes for admins (api/app.py).

The director carries every run out (services/purges.py); a run asked for here is queued and
started at its next look (within seconds), or deferred while the load defers purges."""
from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Body, Depends, Query, Request

from pom_actors.store import purges as store
from pom_actors.store.catalog import NotFound

from .. import auth, deps
from ..validation import Id

router = APIRouter(tags=["purges"])
MAX_PAGE = 500


@router.get("/purges")
def list_runs(limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
              before: Annotated[Id | None, Query(description="runs with an id below this (the next page)")] = None,
              conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """Purge runs, newest first; `next`: the `before` of the next page (null on the last)."""
    runs = store.runs(conn, limit, before)
    return {"runs": runs, "next": runs[-1]["id"] if len(runs) == limit else None}


@router.post("/purges", status_code=202)
def purge_now(request: Request, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """Queue a purge with the retention in force (admins); 409 while another run is pending."""
    context = request.scope.get(auth.AUDIT_KEY)
    who = context.principal.name if context is not None and context.principal is not None else None
    run = store.create_manual_run(conn, who)
    if run is None:
        pending = store.pending_run(conn)
        raise store.PurgePending(f"purge run {pending['id'] if pending else '?'} is still "
                                 f"{pending['state'] if pending else 'pending'}: one run at a time")
    return run


@router.get("/purges/config")
def get_config(conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return store.get_config(conn).document()


@router.put("/purges/config")
def put_config(body: Annotated[dict[str, Any], Body()], conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """Replace the retention config (admins): what the document leaves out takes the defaults;
    a bad one is a 422 with the path of every fault. The director reads it at its next look."""
    return store.save_config(conn, body).document()


@router.get("/purges/{run_id}")
def get_run(run_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    run = store.run(conn, run_id)
    if run is None:
        raise NotFound(f"no purge run {run_id}")
    return run

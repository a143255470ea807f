"""Jobs: list, read, create, and the four commands (start, pause, resume, stop).

Reads go to PostgreSQL; creation and commands go through the CampaignDirector, which owns the
lifecycle. Each command is its own route: the action is the path, never a parameter.

Roles (api/app.py): reads for staff; the commands for admin, supervisor and integration;
creating a job (a new run of a campaign) for admin and integration only.
"""
from __future__ import annotations

from typing import Optional

import psycopg
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from pom_actors.core.lifecycle import JobEvent, JobState, allowed_events
from pom_actors.store import catalog, jobs as jobstore, zones as zonestore

from .. import auth, deps
from ..auth import DEFINE
from ..idempotency import KEYED
from ..pages import Page
from ..validation import Id, Ref, Text
from .zones import ZoneName

router = APIRouter(tags=["jobs"])


class JobCreate(BaseModel):
    campaign: Ref = Field(description="campaign id or name")
    start: bool = True
    zone: Optional[ZoneName] = Field(default=None, description="the zone it runs in (default: the campaign's)")


def job_view(job: dict, counts: dict[str, int]) -> dict:
    return {"id": job["id"], "campaign_id": job["campaign_id"], "campaign": job["campaign"],
            "state": job["state"], "reason": job["reason"], "shards": job["shards"],
            "managers": job["managers"], "zone": job["zone"], "placed_zone": job["placed_zone"],
            "created_at": job["created_at"],
            "started_at": job["started_at"], "ended_at": job["ended_at"],
            "work_items": counts, "total": sum(counts.values()),
            "actions": [str(e) for e in allowed_events(JobState(job["state"]))]}


def job_detail(conn: psycopg.Connection, job_id: int) -> dict:
    view = job_view(jobstore.job(conn, job_id), jobstore.state_counts(conn, [job_id])[job_id])
    view["attempts_by_code"] = jobstore.attempt_codes(conn, job_id)
    return view


@router.get("/jobs")
def list_jobs(state: Text | None = None, campaign_id: Id | None = None, page: Page = Depends(),
              conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of jobs by id (api/pages.py), in `state` and of `campaign_id` if given."""
    rows = jobstore.jobs(conn, (state,) if state else None, after=page.after, limit=page.limit,
                         campaign_id=campaign_id)
    counts = jobstore.state_counts(conn, [r["id"] for r in rows])
    return page.link([job_view(r, counts[r["id"]]) for r in rows])


@router.get("/jobs/{job_id}")
def get_job(job_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return job_detail(conn, job_id)


@router.post("/jobs", status_code=201, dependencies=[auth.allow(write=DEFINE), KEYED])
def create_job(body: JobCreate, conn: psycopg.Connection = Depends(deps.db),
               director: deps.Director = Depends(deps.director)) -> dict:
    if not catalog.campaign(conn, body.campaign)["enabled"]:     # 404 before the director is asked
        raise catalog.CampaignDisabled(f"campaign {body.campaign!r} is disabled: enable it to create a job")
    if body.zone is not None:
        zonestore.check_exists(conn, body.zone)     # 422 before it too
    return job_detail(conn, director.create_job(body.campaign, body.start, body.zone))


def _command(job_id: Id, event: JobEvent, conn: psycopg.Connection, director: deps.Director) -> dict:
    jobstore.job(conn, job_id)                     # 404 before the director is asked
    director.command(job_id, event)
    return job_detail(conn, job_id)


@router.post("/jobs/{job_id}/start", dependencies=[KEYED])
def start_job(job_id: Id, conn: psycopg.Connection = Depends(deps.db),
              director: deps.Director = Depends(deps.director)) -> dict:
    return _command(job_id, JobEvent.START, conn, director)


@router.post("/jobs/{job_id}/pause")
def pause_job(job_id: Id, conn: psycopg.Connection = Depends(deps.db),
              director: deps.Director = Depends(deps.director)) -> dict:
    return _command(job_id, JobEvent.PAUSE, conn, director)


@router.post("/jobs/{job_id}/resume")
def resume_job(job_id: Id, conn: psycopg.Connection = Depends(deps.db),
               director: deps.Director = Depends(deps.director)) -> dict:
    return _command(job_id, JobEvent.RESUME, conn, director)


@router.post("/jobs/{job_id}/stop")
def stop_job(job_id: Id, conn: psycopg.Connection = Depends(deps.db),
             director: deps.Director = Depends(deps.director)) -> dict:
    return _command(job_id, JobEvent.STOP, conn, director)

"""Jobs: list, read, create, and the four commands (start, pause, resume, stop).

Reads go to PostgreSQL; creation and commands go through the CampaignDirector, which owns the
lifecycle. Each command is its own route: the action is the path, never a parameter.

Roles (api/app.py): reads for staff; the commands for admin, supervisor and integration;
creating a job (a new run of a campaign) for admin and integration only.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

import psycopg
from annotated_types import Ge, Le
from fastapi import APIRouter, Depends
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from pom_actors.core.agents.licenses import PRIORITY_MAX, PRIORITY_MIN
from pom_actors.config import Settings
from pom_actors.core import dialling as D
from pom_actors.core.clock import clock_from_spec
from pom_actors.core.lifecycle import JobEvent, JobState, allowed_events
from pom_actors.store import catalog, dialling, job_changes, jobs as jobstore, zones as zonestore

from .. import auth, deps
from ..auth import DEFINE
from ..idempotency import KEYED
from ..pages import Page
from ..validation import BIGINT_MAX, CleanJson, Id, Ref, Text
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
            "created_at": job["created_at"], "priority": job.get("priority"), "pacing": job.get("pacing") or {},
            "dialling_order": job.get("dialling_order", list(D.DEFAULT_ORDER)), "lists": job.get("lists", []),
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


# -- run-time changes: priority, pacing, filter template (store/job_changes.py) ----------------
class JobChange(BaseModel):
    """The changes to make (fields not sent stay). Null puts one back: the campaign's
    priority, the strategy's pacing, no filter."""
    model_config = ConfigDict(extra="forbid")
    priority: int | None = Field(default=None, ge=PRIORITY_MIN, le=PRIORITY_MAX,
                                 description="the job's own (agents and ports are shared by it); null: the campaign's")
    pacing: Annotated[dict[Annotated[str, StringConstraints(max_length=64)], dict[str, Any] | None] | None,
                      CleanJson] = Field(default=None, max_length=100, description=(
        "per handler: settings (merged over the mode's), max_concurrent, attempts_per_second; "
        "null for a handler: its strategy's pacing"))
    filter_id: Id | None = Field(default=None, description="a filter template, checked against the list; null: none")
    # -- the dialling order (store/dialling.py) --
    dialling_order: Annotated[list[Literal[D.KINDS]], AfterValidator(D.dialling_order)] | None = Field(
        default=None, max_length=len(D.KINDS),
        description="priority, retries and regular, each once, in the order the next claims take them")


@router.patch("/jobs/{job_id}")
def update_job(job_id: Id, body: JobChange, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """Change a job that has not ended (409 otherwise): its priority reaches the director at
    its next tick, pacing and filter its managers at their next lease renewal (seconds)."""
    job_changes.change(conn, job_id, **body.model_dump(exclude_unset=True, include={"priority", "pacing", "filter_id"}))
    if body.dialling_order is not None:                      # managers: at their next lease renewal
        with conn.transaction():
            dialling.set_dialling_order(conn, job_id, body.dialling_order)
    return job_detail(conn, job_id)


# -- priority contacts (store/dialling.py) -------------------------------------------------------
class PriorityContacts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact_ids: list[Annotated[int, Ge(1), Le(BIGINT_MAX)]] = Field(min_length=1, max_length=dialling.MAX_PRIORITY_CONTACTS)


@router.post("/jobs/{job_id}/priority-contacts")
def add_priority_contacts(job_id: Id, body: PriorityContacts, conn: psycopg.Connection = Depends(deps.db),
                          settings: Settings = Depends(deps.settings)) -> dict:
    """Contacts of the job's lists dialled as priority contacts (the dialling order places
    them): raised if not attempted yet, added if the job does not hold them yet; the others are
    listed under `skipped` with the reason. 409 once the job has ended."""
    with conn.transaction():
        return dialling.add_priority_contacts(conn, job_id, body.contact_ids, clock_from_spec(settings.clock).now())

"""The FastAPI gateway: health, job control and campaign definitions under /api/v1.

Reads go straight to PostgreSQL (the system of record); anything that changes a job goes
through the CampaignDirector, which owns the lifecycle. Errors are JSON bodies with a
machine-readable `error` and, for bad input, the path of every fault.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pydantic
import ray
from fastapi import Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from pom_actors.config import Settings
from pom_actors.core.lifecycle import IllegalTransition, JobState, allowed_events
from pom_actors.core.finish import FinishCriteria
from pom_actors.core.schedule import Schedule
from pom_actors.core.contacts import ContactRowError, parse_contacts
from pom_actors.core.strategy import STANDARD_ATTRIBUTES, StrategyError
from pom_actors.director import NAME as DIRECTOR, StateChanged
from pom_actors.media_gateway import gateways
from pom_actors.rule_engine import NAME as RULE_ENGINE
from pom_actors.store import catalog, jobs as jobstore
from pom_actors.store.catalog import NotFound
from pom_actors.store.database import libpq_url


COMPONENT_TIMEOUT_S = 3.0


class JobCreate(BaseModel):
    campaign: int | str = Field(description="campaign id or name")
    start: bool = True


class ListCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    attributes: list[str] = []


class CampaignCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    strategy_id: int
    list_id: int
    description: str = ""
    finish: FinishCriteria = FinishCriteria()
    schedule: Schedule | None = None
    priority: int = Field(default=5, ge=1, le=10)


def create_app(settings: Settings) -> FastAPI:
    """The gateway of a running system (`settings.database_url` resolved, Ray initialised)."""
    pool = ConnectionPool(libpq_url(settings.database_url), min_size=1, max_size=8,
                          kwargs={"autocommit": True}, open=False)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        pool.open()
        yield
        pool.close()

    app = FastAPI(title="POM on Ray", version="0.1.0", lifespan=lifespan)
    app.state.sms_sink = []

    def db() -> Iterator:
        with pool.connection() as conn:
            yield conn

    def director():
        return ray.get_actor(DIRECTOR)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound):
        return JSONResponse(status_code=404, content={"error": "not_found", "message": str(exc)})

    @app.exception_handler(StrategyError)
    async def _bad_strategy(_: Request, exc: StrategyError):
        return JSONResponse(status_code=422, content={"error": "invalid_strategy", "errors": exc.errors})

    @app.exception_handler(IllegalTransition)
    async def _illegal(_: Request, exc: IllegalTransition):
        return JSONResponse(status_code=409, content={
            "error": "illegal_transition", "state": str(exc.state), "event": str(exc.event),
            "allowed": [str(e) for e in allowed_events(exc.state)], "message": str(exc)})

    @app.exception_handler(RequestValidationError)
    @app.exception_handler(pydantic.ValidationError)
    async def _invalid(_: Request, exc: RequestValidationError | pydantic.ValidationError):
        return JSONResponse(status_code=422, content={"error": "invalid", "errors": [
            {"path": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
            for e in exc.errors()]})

    @app.exception_handler(psycopg.errors.UniqueViolation)
    async def _conflict(_: Request, exc: psycopg.errors.UniqueViolation):
        return JSONResponse(status_code=409, content={"error": "conflict", "message": exc.diag.message_detail
                                                      or str(exc)})

    @app.exception_handler(psycopg.errors.ForeignKeyViolation)
    async def _dangling(_: Request, exc: psycopg.errors.ForeignKeyViolation):
        return JSONResponse(status_code=404, content={"error": "not_found", "message": exc.diag.message_detail
                                                      or str(exc)})

    @app.exception_handler(ContactRowError)
    async def _bad_rows(_: Request, exc: ContactRowError):
        return JSONResponse(status_code=422, content={"error": "invalid_contacts", "errors": exc.errors,
                                                      "imported": exc.imported})

    # -- health ----------------------------------------------------------------------------------
    @app.get("/health")
    async def health(conn=Depends(db)) -> JSONResponse:
        components: dict[str, Any] = {}
        try:
            conn.execute("SELECT 1")
            components["database"] = {"state": "up"}
        except Exception as exc:
            components["database"] = {"state": "down", "error": str(exc)}
        probes = {"director": (DIRECTOR, "status"), "rule_engine": (RULE_ENGINE, "status")}
        probes.update({name: (name, "stats") for name in gateways(refresh=True)})
        for key, (name, method) in probes.items():
            try:
                ref = getattr(ray.get_actor(name), method).remote()
                components[key] = await asyncio.wait_for(ref, COMPONENT_TIMEOUT_S)
            except Exception as exc:
                components[key] = {"state": "down", "error": type(exc).__name__}
        ok = all(c.get("state", "up") == "up" for c in components.values())
        return JSONResponse(status_code=200 if ok else 503,
                            content={"status": "up" if ok else "degraded", "components": components})

    # -- jobs ------------------------------------------------------------------------------------
    def job_view(conn, job: dict, counts: dict[str, int]) -> dict:
        return {"id": job["id"], "campaign_id": job["campaign_id"], "campaign": job["campaign"],
                "state": job["state"], "reason": job["reason"], "shards": job["shards"],
                "managers": job["managers"], "created_at": job["created_at"],
                "started_at": job["started_at"], "ended_at": job["ended_at"],
                "work_items": counts, "total": sum(counts.values()),
                "actions": [str(e) for e in allowed_events(JobState(job["state"]))]}

    @app.get("/api/v1/jobs")
    def list_jobs(state: str | None = None, conn=Depends(db)) -> list[dict]:
        rows = jobstore.jobs(conn, (state,) if state else None)
        counts = jobstore.state_counts(conn, [r["id"] for r in rows])
        return [job_view(conn, r, counts[r["id"]]) for r in rows]

    @app.get("/api/v1/jobs/{job_id}")
    def get_job(job_id: int, conn=Depends(db)) -> dict:
        job = jobstore.job(conn, job_id)
        view = job_view(conn, job, jobstore.state_counts(conn, [job_id])[job_id])
        view["attempts_by_code"] = jobstore.attempt_codes(conn, job_id)
        return view

    @app.post("/api/v1/jobs", status_code=201)
    async def create_job(body: JobCreate, conn=Depends(db)) -> dict:
        catalog.campaign(conn, body.campaign)          # 404 before the director is asked
        job_id = await director().create_job.remote(body.campaign, body.start)
        return get_job(job_id, conn)

    async def command(job_id: int, event: str, conn) -> dict:
        jobstore.job(conn, job_id)
        try:
            await director().command.remote(job_id, event)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, IllegalTransition):
                raise exc.cause from None
            if isinstance(exc.cause, StateChanged):
                return JSONResponse(status_code=409, content={"error": "conflict", "message": str(exc.cause)})
            raise
        return get_job(job_id, conn)

    for event in ("start", "pause", "resume", "stop"):
        async def handler(job_id: int, conn=Depends(db), _event: str = event) -> dict:
            return await command(job_id, _event, conn)
        app.post(f"/api/v1/jobs/{{job_id}}/{event}", name=f"{event}_job")(handler)

    # -- definitions -----------------------------------------------------------------------------
    @app.post("/api/v1/strategies", status_code=201)
    def create_strategy(document: Any = Body(..., media_type="application/json"),
                        list_id: int | None = None, conn=Depends(db)) -> dict:
        attributes = None if list_id is None else (
            set(catalog.list_attributes(conn, list_id)) | set(STANDARD_ATTRIBUTES))
        sid, strategy = catalog.save_strategy(conn, document, attributes)
        return {"id": sid, "name": strategy.name, "version": strategy.version}

    @app.post("/api/v1/lists", status_code=201)
    def create_list(body: ListCreate, conn=Depends(db)) -> dict:
        return {"id": catalog.create_list(conn, body.name, body.description, body.attributes),
                "name": body.name}

    @app.post("/api/v1/lists/{list_id}/contacts")
    def add_contacts(list_id: int, rows: list[dict[str, Any]], conn=Depends(db)) -> dict:
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

    @app.post("/api/v1/campaigns", status_code=201)
    def create_campaign(body: CampaignCreate, conn=Depends(db)) -> dict:
        with conn.transaction():
            cid = catalog.create_campaign(
                conn, body.name, body.strategy_id, body.list_id, description=body.description,
                finish=body.finish.model_dump(mode="json", exclude_none=True, exclude_defaults=True),
                schedule=body.schedule.model_dump(mode="json") if body.schedule else None,
                priority=body.priority)
        return catalog.campaign(conn, cid)

    @app.get("/api/v1/campaigns")
    def list_campaigns(conn=Depends(db)) -> list[dict]:
        return catalog.campaigns(conn)

    # -- the demo's SMS gateway (POM_SMS_URL points here when the demo runs) -------------------------
    if settings.demo:
        @app.post("/demo/sms")
        def demo_sms(message: dict[str, Any]) -> dict:
            app.state.sms_sink.append(message)
            return {"status": "accepted", "id": len(app.state.sms_sink)}

        @app.get("/demo/sms")
        def demo_sms_count() -> dict:
            return {"received": len(app.state.sms_sink), "last": app.state.sms_sink[-5:]}

    return app


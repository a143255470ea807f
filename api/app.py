"""The FastAPI gateway: `create_app(settings)` builds the connection pool, includes the
routers (one per resource, in `api/routers/`) and installs the error handlers (`api/errors.py`).

Reads go straight to PostgreSQL (the system of record); anything that changes a job goes
through the CampaignDirector, which owns the lifecycle. Errors are RFC 9457 problem details
with a machine-readable `error` and, for bad input, the path of every fault; `errors.install`
also declares every route's in OpenAPI (a router added here needs nothing for that).
"""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from pom_actors.config import Settings
from pom_actors.gil import favour_the_event_loop
from pom_actors.store.database import libpq_url

from . import auth, errors
from .auth import DEFINE, OPERATE, STAFF
from .limits import BodyLimit
from .idempotency import Idempotency, SqlKeys
from .routers import dnc, filters
from .routers import agent_ws, agents
from .routers import campaigns, demo, health, imports, jobs, lists, metrics, strategies
from .routers import import_schedules
from .routers import audit, tokens
from .routers import load
from .routers import purges, reports
from .routers import pacing
from .routers import zones
from .routers import contacts, rules
from .routers import agent_scripts, completion_codes

API_PREFIX = "/api/v1"


def create_app(settings: Settings) -> FastAPI:
    """The gateway of a running system (`settings.database_url` resolved, Ray initialised);
    a request body over `settings.max_body_bytes` is refused with 413."""
    def autocommit_pool(size: int) -> ConnectionPool:
        return ConnectionPool(libpq_url(settings.database_url), min_size=1, max_size=size,
                              kwargs={"autocommit": True}, open=False)

    pool = autocommit_pool(8)
    # The gateway's own bookkeeping (token lookups, audit entries, idempotency keys) on a pool
    # of its own: a route holds its request's connection until its answer has left, and the
    # audit entry and the idempotency key are written before that. On one pool, eight routes
    # at once held every connection and each waited 30 s (the pool's timeout) for a ninth.
    side = autocommit_pool(4)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        favour_the_event_loop()     # the agents' sockets, beside the request threads
        pool.open()
        side.open()
        yield
        side.close()
        pool.close()

    app = FastAPI(title="POM on Ray", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.pool, app.state.side_pool = pool, side
    app.state.sms_sink = []
    app.state.idempotency = SqlKeys(side)
    app.add_middleware(Idempotency)                          # inside the body limit
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes,
                       larger=((imports.UPLOAD_PATH, settings.max_import_bytes),))
    errors.install(app)
    auth.install(app)
    # Who may call what (docs/api.md, "Roles"): every router gets its roles here, and routes
    # of a mixed router narrow them (tests/unit/test_auth_routes.py fails for a route without).
    app.include_router(health.router)                        # public, details with a token
    app.include_router(metrics.router, dependencies=[auth.allow(STAFF)])
    for resource in (strategies, lists, campaigns, rules, completion_codes, agent_scripts):
        app.include_router(resource.router, prefix=API_PREFIX, dependencies=[auth.allow(STAFF, DEFINE)])
    app.include_router(jobs.router, prefix=API_PREFIX, dependencies=[auth.allow(STAFF, OPERATE)])
    app.include_router(pacing.router, prefix=API_PREFIX, dependencies=[auth.allow(STAFF)])   # a job's pacers
    app.include_router(filters.router, prefix=API_PREFIX, dependencies=[auth.allow(STAFF, OPERATE)])
    app.include_router(imports.router, prefix=API_PREFIX, dependencies=[auth.allow(STAFF, DEFINE)])
    app.include_router(import_schedules.router, prefix=API_PREFIX, dependencies=[auth.allow(STAFF, DEFINE)])
    app.include_router(tokens.router, prefix=API_PREFIX, dependencies=[auth.allow(auth.ADMIN)])
    app.include_router(dnc.router, prefix=API_PREFIX, dependencies=[auth.allow(STAFF, OPERATE)])
    app.include_router(audit.router, prefix=API_PREFIX, dependencies=[auth.allow(auth.OVERSEE)])
    app.include_router(agents.router, prefix=API_PREFIX,                # agents, supervisor commands, licenses
                       dependencies=[auth.allow(STAFF, OPERATE)])
    app.include_router(agents.own, prefix=API_PREFIX,                   # an agent: its own (may_act_as)
                       dependencies=[auth.allow(STAFF | auth.AGENTS)])
    app.include_router(agent_ws.router, prefix=API_PREFIX,              # the agent desktops' WebSocket
                       dependencies=[auth.allow(auth.AGENTS)])
    app.include_router(load.router, prefix=API_PREFIX,                  # alarms, load, its thresholds
                       dependencies=[auth.allow(STAFF, auth.ADMIN)])
    app.include_router(zones.router, prefix=API_PREFIX,                 # zones, their states and failovers
                       dependencies=[auth.allow(STAFF, auth.ADMIN)])
    app.include_router(contacts.router, prefix=API_PREFIX,              # web services for IVRs, self-service
                       dependencies=[auth.allow(auth.INTEGRATE)])
    app.include_router(reports.router, prefix=API_PREFIX,               # attempts, abandons, agent time
                       dependencies=[auth.allow(auth.OVERSEE)])
    app.include_router(purges.router, prefix=API_PREFIX,                # purge runs, retention config
                       dependencies=[auth.allow(auth.OVERSEE, auth.ADMIN)])
    if settings.demo:
        app.include_router(demo.router)                      # its own per route
    return app

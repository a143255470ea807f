"""Reports (docs/api.md, "Reports"): attempts by completion code per job and hour, abandon rate
per job and window, agent time by state — read from PostgreSQL (the ledger and the agent
events), for supervisors and admins (api/app.py).

Every report reads one bounded range (`core.reports.resolve`: `until` defaults to now, `since`
to 24 h before, at most 31 days) and answers at most `limit` rows (`truncated` says more were
there). While the load monitor's "reports limited" restriction holds, the default range is
1 h and a longer one is answered 503 with `Retry-After`."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query

from pom_actors.core import reports as core
from pom_actors.store import load as loadstore
from pom_actors.store import reports as store

from .. import deps
from ..errors import Unavailable, declare
from ..validation import Id

router = APIRouter(tags=["reports"])

Since = Annotated[datetime | None, Query(description="from this time (ISO 8601; UTC if no zone); "
                                                     "default: until minus 24 h (1 h under load)")]
Until = Annotated[datetime | None, Query(description="before this time; default: now")]
Limit = Annotated[int, Query(ge=1, le=core.MAX_ROWS, description="rows at most")]
Job = Annotated[Id | None, Query(description="this job only")]
Seconds = Query(ge=core.MIN_BUCKET_S, le=core.MAX_BUCKET_S, description="width in seconds, aligned on UTC midnight")


def _read(conn: psycopg.Connection, since: datetime | None, until: datetime | None, limit: int,
          query) -> dict[str, Any]:
    restrictions = loadstore.restrictions(conn)
    config = None if restrictions.allows("report") else loadstore.get_config(conn)
    span = core.resolve(since, until, datetime.now(timezone.utc), restrictions, config)
    try:
        rows = query(span)
    except psycopg.errors.QueryCanceled:
        raise Unavailable(f"the report took over {store.STATEMENT_TIMEOUT} and was cancelled; "
                          "ask for a shorter range") from None
    return {**span.document(), "limit": limit, "truncated": len(rows) > limit, "rows": rows[:limit]}


@router.get("/reports/attempts", responses=declare(503))
def attempts(job: Job = None, since: Since = None, until: Until = None, bucket_s: Annotated[int, Seconds] = 3600,
             limit: Limit = core.DEFAULT_ROWS, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """Attempts by completion code per job and bucket (`at`: the bucket's start, UTC-aligned);
    a restricted attempt without a code counts under its verdict."""
    return _read(conn, since, until, limit, lambda span: store.attempts_by_code(
        conn, span.since, span.until, job_id=job, bucket_s=bucket_s, limit=limit)) | {"bucket_s": bucket_s}


@router.get("/reports/abandons", responses=declare(503))
def abandons(job: Job = None, since: Since = None, until: Until = None, window_s: Annotated[int, Seconds] = 900,
             limit: Limit = core.DEFAULT_ROWS, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """Per job (`at` null: the whole range) and window: live answers (`answered`), `abandoned`,
    and `rate` = abandoned / (answered + abandoned), null without a live answer."""
    return _read(conn, since, until, limit, lambda span: store.abandons(
        conn, span.since, span.until, job_id=job, window_s=window_s, limit=limit)) | {"window_s": window_s}


@router.get("/reports/agent-time", responses=declare(503))
def agent_time(agent: Annotated[Id | None, Query(description="this agent id only")] = None, since: Since = None,
               until: Until = None, limit: Limit = core.DEFAULT_ROWS,
               conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """Per agent and state (logged out left out): `seconds` in it within the range and how many
    times it was `entered` there."""
    return _read(conn, since, until, limit, lambda span: store.agent_time(
        conn, span.since, span.until, agent_id=agent, limit=limit))

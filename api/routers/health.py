"""`GET /health`: the database and every actor, probed in parallel within one timeout."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool

from pom_actors.store.base import ping

from .. import deps

router = APIRouter(tags=["health"])


@router.get("/health")
def health(pool: ConnectionPool = Depends(deps.pool),
           probe: Callable = Depends(deps.actor_probe)) -> JSONResponse:
    deadline = time.monotonic() + deps.COMPONENT_TIMEOUT_S
    collect = probe(deadline)                      # the actors work while the database answers
    components: dict[str, Any] = {"database": _database(pool, deadline)}
    components.update(collect())
    ok = all(c.get("state", "up") == "up" for c in components.values())
    return JSONResponse(status_code=200 if ok else 503,
                        content={"status": "up" if ok else "degraded", "components": components})


def _database(pool: ConnectionPool, deadline: float) -> dict:
    try:
        with pool.connection(timeout=max(0.1, deadline - time.monotonic())) as conn:
            ping(conn)
        return {"state": "up"}
    except Exception as exc:
        return {"state": "down", "error": str(exc)}

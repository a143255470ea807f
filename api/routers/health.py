"""`GET /health`: the database and every actor, probed in parallel within one timeout.

Open without a token, so that a load balancer can probe it: without one the answer is only
`{"status": "up" | "degraded"}` (200 / 503); with a token of a staff role (admin, supervisor,
integration) it has every component's details. A token that is sent must be valid (401)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from pom_actors.store.base import ping

from pom_actors.core.tokens import Principal

from .. import auth, deps

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["up", "degraded"]
    components: dict[str, dict[str, Any]] | None = None


@router.get("/health", dependencies=[auth.public("load balancers probe it; its details need a token")],
            responses={200: {"model": Health}, 503: {"model": Health, "description": "a component is down"}})
def health(pool: ConnectionPool = Depends(deps.pool),
           probe: Callable = Depends(deps.actor_probe),
           caller: Principal | None = Depends(auth.maybe_authenticate)) -> JSONResponse:
    deadline = time.monotonic() + deps.COMPONENT_TIMEOUT_S
    collect = probe(deadline)                      # the actors work while the database answers
    components: dict[str, Any] = {"database": _database(pool, deadline)}
    components.update(collect())
    ok = all(c.get("state", "up") == "up" for c in components.values())
    content: dict[str, Any] = {"status": "up" if ok else "degraded"}
    if caller is not None and caller.role in auth.STAFF:
        content["components"] = components
    return JSONResponse(status_code=200 if ok else 503, content=content)


def _database(pool: ConnectionPool, deadline: float) -> dict:
    try:
        with pool.connection(timeout=max(0.1, deadline - time.monotonic())) as conn:
            ping(conn)
        return {"state": "up"}
    except Exception as exc:
        return {"state": "down", "error": str(exc)}

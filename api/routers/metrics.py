"""`GET /metrics`: the `pom_` metrics in Prometheus' text format (docs/api.md, "Metrics").

Each app has its own registry and collector (`api.metrics.PomCollector`), created at its first
scrape; scrapes of one app run one at a time. A scrape reads the database once and probes the
actors once, in parallel, within `deps.COMPONENT_TIMEOUT_S` overall, like /health.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from psycopg_pool import ConnectionPool

from pom_actors import names
from pom_actors.core.clock import clock_from_spec
from pom_actors.store import metrics as store

from .. import deps
from ..errors import NoAnswer, declare
from ..metrics import PomCollector, Sources, scale_of

router = APIRouter(tags=["metrics"])
_creating = threading.Lock()


@dataclass
class AppMetrics:
    registry: CollectorRegistry
    collector: PomCollector
    lock: threading.Lock


def app_metrics(app: Any) -> AppMetrics:
    """The registry and collector of `app` (made at the first call)."""
    with _creating:
        found = getattr(app.state, "pom_metrics", None)
        if found is None:
            settings = app.state.settings
            collector = PomCollector(clock_from_spec(settings.clock).now, scale_of(settings.clock),
                                     deps.COMPONENT_TIMEOUT_S)
            registry = CollectorRegistry(auto_describe=False)
            registry.register(collector)
            found = app.state.pom_metrics = AppMetrics(registry, collector, threading.Lock())
    return found


def probe_managers(manager_names: list[str], deadline: float) -> Callable[[], dict[str, dict]]:
    """Send `status()` to every manager at once; the returned function waits until `deadline`
    at most and gives each one's answer, or `{"state": "down", "error": <exception type>}`."""
    if not manager_names:
        return dict
    import ray

    out: dict[str, dict] = {}
    refs: dict[str, Any] = {}
    for name in manager_names:
        handle = names.actor(name)
        if handle is None:
            out[name] = {"state": "down", "error": deps.ACTOR_MISSING}
            continue
        try:
            refs[name] = handle.status.remote()
        except Exception as exc:
            out[name] = {"state": "down", "error": type(exc).__name__}

    def collect() -> dict[str, dict]:
        ready: set = set()
        if refs:
            done, _ = ray.wait(list(refs.values()), num_returns=len(refs),
                               timeout=max(0.0, deadline - time.monotonic()))
            ready = set(done)
        for name, ref in refs.items():
            try:
                out[name] = ray.get(ref) if ref in ready else {"state": "down", "error": TimeoutError.__name__}
            except Exception as exc:
                out[name] = {"state": "down", "error": type(exc).__name__}
        return out

    return collect


def probe_agents(deadline: float) -> Callable[[], dict]:
    """Ask the Agent Manager for its `metrics()` (counts only); the returned function waits
    until `deadline` at most and gives its answer, or `{"state": "down", "error": ...}`."""
    try:
        import ray

        handle = names.actor(names.AGENT_MANAGER)
        if handle is None:
            return lambda: {"state": "down", "error": deps.ACTOR_MISSING}
        ref = handle.metrics.remote()
    except Exception as exc:                  # no Ray here, or the call could not be sent
        error = type(exc).__name__
        return lambda: {"state": "down", "error": error}

    def collect() -> dict:
        done, _ = ray.wait([ref], timeout=max(0.0, deadline - time.monotonic()))
        if not done:
            return {"state": "down", "error": TimeoutError.__name__}
        try:
            return ray.get(ref)
        except Exception as exc:
            return {"state": "down", "error": type(exc).__name__}

    return collect


def agent_probe() -> Callable[[float], Callable[[], dict]]:
    return probe_agents


def manager_probe() -> Callable[[list[str], float], Callable[[], dict[str, dict]]]:
    return probe_managers


def metric_sources(pool: ConnectionPool = Depends(deps.pool), probe: Callable = Depends(deps.actor_probe),
                   managers: Callable = Depends(manager_probe),
                   agents: Callable = Depends(agent_probe)) -> Sources:
    """The collector's sources over the app's connection pool and the actor probes."""
    def checkout(deadline: float | None = None):
        return pool.connection(timeout=None if deadline is None else max(0.1, deadline - time.monotonic()))

    def read(deadline: float, query, outbox_from: int):
        with checkout(deadline) as conn:
            return store.read(conn, deadline=deadline, ledger=query, outbox_from=outbox_from)

    def oldest_open_s(deadline: float) -> float:
        with checkout(deadline) as conn:
            return store.oldest_transaction_s(conn)

    def read_ledger(query):
        with checkout() as conn:
            return store.ledger(conn, query)

    def job_totals(job_ids: list[int]) -> dict[int, int]:
        with checkout() as conn:
            return store.job_items_total(conn, job_ids)

    return Sources(read=read, oldest_open_s=oldest_open_s, read_ledger=read_ledger, job_totals=job_totals,
                   probe=probe, probe_managers=managers, probe_agents=agents, restarts=names.restarts)


@router.get("/metrics", response_class=Response, responses=declare(504))   # a scrape still running
def metrics(request: Request, sources: Sources = Depends(metric_sources)) -> Response:
    state = app_metrics(request.app)
    if not state.lock.acquire(timeout=deps.COMPONENT_TIMEOUT_S):
        raise NoAnswer("another scrape of /metrics is still running")
    try:
        state.collector.bind(sources)
        body = generate_latest(state.registry)
    finally:
        state.lock.release()
    # The classic text format (every name here is plain ASCII): what any Prometheus 2.x parses.
    return Response(content=body, media_type=CONTENT_TYPE_PLAIN_0_0_4)

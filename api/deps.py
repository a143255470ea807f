"""What routes depend on: the settings, a database connection, the director, the actor probe.

The pool and the settings live on `app.state` (set by `create_app`). Routes that touch the
database are plain `def` routes, which FastAPI runs in its threadpool, so a blocking query or
a `ray.get` never stalls the event loop. Actors are found by their names in
`pom_actors.names`; this module imports Ray only when it calls it, so the routers import
(and unit tests override these dependencies) where Ray is not installed.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from fastapi import Depends, Request
from psycopg_pool import ConnectionPool

from pom_actors import names
from pom_actors.config import Settings
from pom_actors.core.lifecycle import IllegalTransition, JobEvent, StateChanged
from pom_actors.core.zones import ZoneError
from pom_actors.store.catalog import NotFound

from .errors import NoAnswer, Unavailable, raises

DIRECTOR_TIMEOUT_S = 60.0     # a job command or creation waits this long for the director
COMPONENT_TIMEOUT_S = 3.0     # /health waits this long, overall, for every component
# What ray.get_actor raised for an actor that is not there: the error /health has always
# reported for one (clients may match on it).
ACTOR_MISSING = "ValueError"


def settings(request: Request) -> Settings:
    return request.app.state.settings


def pool(request: Request) -> ConnectionPool:
    return request.app.state.pool


def db(pool: ConnectionPool = Depends(pool)) -> Iterator[psycopg.Connection]:
    """A pooled autocommit connection for one request (use from `def` routes only)."""
    with pool.connection() as conn:
        yield conn


# -- the director ------------------------------------------------------------------------------
class Director:
    """The CampaignDirector as the routes see it: blocking calls with a timeout that raise the
    director's own exceptions (IllegalTransition, StateChanged, NotFound) rather than Ray's."""

    PASSED_ON = (IllegalTransition, StateChanged, NotFound, ZoneError)

    def __init__(self, handle: Any, timeout_s: float = DIRECTOR_TIMEOUT_S):
        self.handle = handle
        self.timeout_s = timeout_s

    def create_job(self, campaign: int | str, start: bool, zone: str | None = None) -> int:
        return self._get(self.handle.create_job.remote(campaign, start, zone))

    def command(self, job_id: int, event: JobEvent) -> str:
        return self._get(self.handle.command.remote(job_id, str(event)))

    def _get(self, ref: Any) -> Any:
        import ray

        try:
            return ray.get(ref, timeout=self.timeout_s)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, self.PASSED_ON):
                raise exc.cause from None
            raise
        except ray.exceptions.GetTimeoutError:
            raise NoAnswer(f"the campaign director did not answer within {self.timeout_s:g} s") from None
        except ray.exceptions.RayActorError:
            raise Unavailable("the campaign director is not running") from None


@raises(503, 504)
def director() -> Director:
    handle = names.actor(names.DIRECTOR)
    if handle is None:
        raise Unavailable("the campaign director is not running")
    return Director(handle)


def zone_servers() -> dict | None:
    """Live POM servers per zone as the director last saw them (`zone_servers`, and
    `unzoned_servers`: those without a zone resource); None if it does not answer at once."""
    import ray

    handle = names.actor(names.DIRECTOR)
    if handle is None:
        return None
    try:
        status = ray.get(handle.status.remote(), timeout=COMPONENT_TIMEOUT_S)
    except Exception:
        return None
    return {"zones": status.get("zone_servers", {}), "unzoned": status.get("unzoned_servers", 0)}


# -- the actors /health probes -----------------------------------------------------------------
def probe_actors(deadline: float) -> Callable[[], dict[str, dict]]:
    """Send every probe at once (director, rule engine and event relay `status()`, each media
    gateway's `stats()`); the returned function waits until `deadline` (time.monotonic) at most and gives
    each component's answer, or `{"state": "down", "error": <exception type>}`."""
    import ray

    out: dict[str, dict] = {}
    refs: dict[str, Any] = {}
    targets = [("director", names.actor(names.DIRECTOR), "status"),
               ("rule_engine", names.actor(names.RULE_ENGINE), "status")]
    relay = names.actor(names.EVENT_RELAY)        # absent when POM_KAFKA=off
    if relay is not None:
        targets.append(("event_relay", relay, "status"))
    targets += [(name, handle, "stats") for name, handle in names.gateways(refresh=True).items()]
    for key, handle, method in targets:
        if handle is None:
            out[key] = {"state": "down", "error": ACTOR_MISSING}
            continue
        try:
            refs[key] = getattr(handle, method).remote()
        except Exception as exc:
            out[key] = _down(exc)

    def collect() -> dict[str, dict]:
        ready: set = set()
        if refs:
            done, _ = ray.wait(list(refs.values()), num_returns=len(refs),
                               timeout=max(0.0, deadline - time.monotonic()))
            ready = set(done)
        for key, ref in refs.items():
            if ref not in ready:
                out[key] = {"state": "down", "error": TimeoutError.__name__}
                continue
            try:
                out[key] = ray.get(ref)
            except Exception as exc:
                out[key] = _down(exc)
        return {key: out[key] for key, _, _ in targets}

    return collect


def _down(exc: BaseException) -> dict:
    return {"state": "down", "error": type(exc).__name__}


def actor_probe() -> Callable[[float], Callable[[], dict[str, dict]]]:
    return probe_actors

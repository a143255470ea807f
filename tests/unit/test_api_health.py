"""/health without Ray or a database: the route with fakes of the pool and the actor probe,
and the probe itself over a fake `ray` module (every probe is sent before any is waited for)."""
from __future__ import annotations

import sys
import time
import types
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from api import auth, deps
from api.app import create_app
from pom_actors import names
from pom_actors.config import Settings

UNUSED_DB = "postgresql://unused@127.0.0.1:1/none"


class FakePool:
    def __init__(self, up: bool = True):
        self.up, self.timeouts = up, []

    @contextmanager
    def connection(self, timeout=None):
        self.timeouts.append(timeout)
        if not self.up:
            raise OSError("connection refused")
        yield types.SimpleNamespace(execute=lambda sql: None)


def _client(pool: FakePool, components: dict) -> TestClient:
    app = create_app(Settings(database_url=UNUSED_DB, demo=False))
    app.dependency_overrides[deps.pool] = lambda: pool
    app.dependency_overrides[deps.actor_probe] = lambda: (lambda deadline: lambda: dict(components))
    return TestClient(app, headers=auth.for_tests(app))


UP = {"director": {"state": "up", "ticks": 3}, "rule_engine": {"state": "up"},
      "pom-gateway-aaaaaaaaaaaa-000001": {"name": "pom-gateway-aaaaaaaaaaaa-000001", "pending": 0}}


def test_every_component_up_is_200():
    pool = FakePool()
    r = _client(pool, UP).get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "up", "components": {"database": {"state": "up"}, **UP}}
    assert list(r.json()["components"]) == ["database", "director", "rule_engine",
                                            "pom-gateway-aaaaaaaaaaaa-000001"]
    assert 0 < pool.timeouts[0] <= deps.COMPONENT_TIMEOUT_S


@pytest.mark.parametrize("change", [
    {"director": {"state": "draining"}},
    {"rule_engine": {"state": "down", "error": "TimeoutError"}},
    {"pom-gateway-aaaaaaaaaaaa-000001": {"state": "down", "error": "ActorDiedError"}}])
def test_any_component_not_up_is_503(change):
    r = _client(FakePool(), {**UP, **change}).get("/health")
    assert r.status_code == 503 and r.json()["status"] == "degraded"


def test_a_database_that_does_not_answer_is_reported_not_raised():
    r = _client(FakePool(up=False), UP).get("/health")
    assert r.status_code == 503
    assert r.json()["components"]["database"] == {"state": "down", "error": "connection refused"}


# -- the probe over a fake ray ------------------------------------------------------------------
class Ref:
    def __init__(self, log, key, delay, result):
        self.key, self.ready_at, self.result = key, time.monotonic() + delay, result
        log.append(("remote", key))


class Method:
    def __init__(self, log, key, delay, result):
        self.args = log, key, delay, result

    def remote(self):
        return Ref(*self.args)


class FakeRay(types.ModuleType):
    """Just what `names` and `deps.probe_actors` use of ray."""

    def __init__(self, actors: dict[str, tuple[str, float, object]]):
        super().__init__("ray")
        self.log: list = []
        self.actors = {name: types.SimpleNamespace(**{method: Method(self.log, name, delay, result)})
                       for name, (method, delay, result) in actors.items()}
        self.util = types.SimpleNamespace(list_named_actors=lambda: list(self.actors))

    def get_actor(self, name):
        if name not in self.actors:
            raise ValueError(f"Failed to look up actor with name '{name}'")
        return self.actors[name]

    def wait(self, refs, num_returns, timeout):
        self.log.append(("wait", num_returns, timeout))
        end = time.monotonic() + timeout
        while time.monotonic() < end and any(r.ready_at > time.monotonic() for r in refs):
            time.sleep(0.01)
        ready = [r for r in refs if r.ready_at <= time.monotonic()]
        return ready, [r for r in refs if r not in ready]

    def get(self, ref, timeout=None):
        self.log.append(("get", ref.key))
        if isinstance(ref.result, Exception):
            raise ref.result
        return ref.result


def test_the_probe_asks_every_actor_at_once_and_waits_once(monkeypatch):
    gw_slow, gw_ok = "pom-gateway-aaaaaaaaaaaa-000001", "pom-gateway-bbbbbbbbbbbb-000002"
    fake = FakeRay({names.DIRECTOR: ("status", 0.0, {"state": "up"}),
                    gw_slow: ("stats", 10.0, {"pending": 1}),
                    gw_ok: ("stats", 0.05, {"pending": 0}),
                    "pom-gateway-cccccccccccc-000003": ("stats", 0.0, KeyError("boom")),
                    "pom-manager-1-0": ("status", 0.0, {"state": "up"})})   # not probed
    monkeypatch.setitem(sys.modules, "ray", fake)
    started = time.monotonic()
    components = deps.probe_actors(time.monotonic() + 0.5)()
    assert time.monotonic() - started < 1.5                    # one timeout overall, not one each
    assert components == {
        "director": {"state": "up"},
        "rule_engine": {"state": "down", "error": "ValueError"},   # not running
        gw_slow: {"state": "down", "error": "TimeoutError"},
        gw_ok: {"pending": 0},
        "pom-gateway-cccccccccccc-000003": {"state": "down", "error": "KeyError"}}
    kinds = [entry[0] for entry in fake.log]
    assert kinds.count("remote") == 4 and kinds.count("wait") == 1
    assert kinds.index("wait") > max(i for i, k in enumerate(kinds) if k == "remote")
    assert 0 < fake.log[kinds.index("wait")][2] <= 0.5

"""Tokens, the token cache, authentication, /health without a token, the audit trail and the
admin-token file — without a database (the token lookup and the audit writer are fakes)."""
from __future__ import annotations

import os
import stat

import pytest
from typing import Any

from fastapi import Body, FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocket, WebSocketDisconnect

from api import auth, deps, errors
from api.app import create_app
from api.client import PomClient
from pom_actors.config import Settings
from pom_actors.core import tokens as T
from pom_actors.core.tokens import Principal, Role

UNUSED_DB = "postgresql://unused@127.0.0.1:1/none"


# -- tokens -------------------------------------------------------------------------------------
def test_a_new_token_is_random_prefixed_and_stored_as_its_sha256():
    a, b = T.new_token(), T.new_token()
    assert a.value != b.value and a.value.startswith("pom_") and len(a.value) == 4 + 43
    assert a.prefix == a.value[:12] and a.hash == T.hash_token(a.value) and len(a.hash) == 64
    assert T.same_hash(a.hash, T.hash_token(a.value)) and not T.same_hash(a.hash, b.hash)
    assert T.plausible(a.value) and not T.plausible("Bearer x") and not T.plausible("pom_" + "x" * 300)


def test_the_token_file_is_0600_whatever_the_umask_and_replaced_whole(tmp_path):
    old = os.umask(0)
    try:
        path = T.admin_token_path(tmp_path / "data")
        T.write_token_file(path, "pom_first")
        T.write_token_file(path, "pom_second")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert T.read_token_file(path) == "pom_second"
    assert [p.name for p in path.parent.iterdir()] == ["admin-token"]      # no temporary file left


def test_clients_take_pom_token_else_the_admin_token_file(tmp_path, monkeypatch):
    T.write_token_file(T.admin_token_path(tmp_path), "pom_fromfile")
    assert T.find_token({"POM_DATA_DIR": str(tmp_path)}) == "pom_fromfile"
    assert T.find_token({"POM_DATA_DIR": str(tmp_path), "POM_TOKEN": "pom_env"}) == "pom_env"
    assert T.find_token({"POM_DATA_DIR": str(tmp_path / "none")}) is None
    monkeypatch.setenv("POM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("POM_TOKEN", raising=False)
    assert PomClient("http://x").http.headers["Authorization"] == "Bearer pom_fromfile"
    assert PomClient("http://x", token="pom_given").http.headers["Authorization"] == "Bearer pom_given"


# -- the cache ----------------------------------------------------------------------------------
def test_the_cache_keeps_tokens_for_its_ttl_least_recently_used_out():
    now = [0.0]
    cache = auth.TokenCache(ttl_s=5, size=2, clock=lambda: now[0])
    p = [Principal(i, f"t{i}", Role.ADMIN) for i in range(3)]
    cache.put("a", p[0])
    cache.put("b", p[1])
    assert cache.get("a") == p[0]                  # a is now the most recent
    cache.put("c", p[2])                           # b goes
    assert cache.get("b") is None and cache.get("c") == p[2]
    now[0] = 5.0
    assert cache.get("a") is None                  # expired
    cache.put("a", p[0])
    cache.forget(0)
    assert cache.get("a") is None


# -- authentication on a real app ---------------------------------------------------------------
class Directory:
    """A token directory that counts its lookups; revoking removes a token."""

    def __init__(self):
        self.tokens: dict[str, Principal] = {}
        self.lookups = 0

    def add(self, role: Role, agent_id: int | None = None) -> str:
        value = T.new_token().value
        self.tokens[value] = Principal(len(self.tokens) + 1, f"{role} token", role, value[:12], agent_id)
        return value

    def lookup(self, value: str) -> Principal | None:
        self.lookups += 1
        return self.tokens.get(value)


@pytest.fixture
def gateway():
    app = create_app(Settings(database_url=UNUSED_DB, demo=False))
    directory = Directory()
    app.dependency_overrides[auth.token_directory] = lambda: directory.lookup
    app.dependency_overrides[deps.pool] = lambda: FakePool()
    app.dependency_overrides[deps.actor_probe] = lambda: (lambda deadline: lambda: {"director": {"state": "up"}})
    app.state.audit_writer = (entries := []).append
    return app, directory, entries, TestClient(app, raise_server_exceptions=False)


class FakePool:
    from contextlib import contextmanager

    @contextmanager
    def connection(self, timeout=None):
        yield type("C", (), {"execute": lambda self, sql: None})()


def bearer(value: str) -> dict:
    return {"Authorization": f"Bearer {value}"}


def test_no_token_bad_token_and_wrong_role(gateway):
    app, directory, _, http = gateway
    r = http.get("/api/v1/jobs")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    said = "an API token is required (Authorization: Bearer <token>)"
    assert r.json() == {"type": "urn:pom:problem:unauthorized", "title": "No valid API token", "status": 401,
                        "detail": said, "error": "unauthorized", "message": said}
    for bad in ("pom_" + "x" * 43, "nonsense", "pom_"):
        r = http.get("/api/v1/jobs", headers=bearer(bad))
        assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    r = http.get("/api/v1/jobs", headers={"Authorization": "Basic YTpi"})
    assert r.status_code == 401
    agent = directory.add(Role.AGENT, agent_id=3)
    r = http.get("/api/v1/jobs", headers=bearer(agent))
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    supervisor = directory.add(Role.SUPERVISOR)
    assert http.post("/api/v1/tokens", headers=bearer(supervisor), json={}).status_code == 403
    assert http.get("/api/v1/audit", headers=bearer(directory.add(Role.INTEGRATION))).status_code == 403


def test_a_verified_token_is_cached_and_a_revoked_one_refused_after_the_ttl(gateway):
    app, directory, _, http = gateway
    now = [0.0]
    app.state.token_cache = auth.TokenCache(ttl_s=5, clock=lambda: now[0])
    value = directory.add(Role.INTEGRATION)
    for _ in range(3):
        assert http.get("/health", headers=bearer(value)).status_code == 200
    assert directory.lookups == 1
    del directory.tokens[value]                                # revoked in the database
    now[0] = 4.9
    assert http.get("/health", headers=bearer(value)).status_code == 200    # within the TTL
    now[0] = 5.0
    assert http.get("/health", headers=bearer(value)).status_code == 401
    assert directory.lookups == 2


def test_health_without_a_token_says_only_up_or_degraded(gateway):
    app, directory, _, http = gateway
    r = http.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "up"}
    assert http.get("/health", headers=bearer(directory.add(Role.AGENT, 1))).json() == {"status": "up"}
    full = http.get("/health", headers=bearer(directory.add(Role.SUPERVISOR))).json()
    assert full["components"]["director"] == {"state": "up"}
    assert http.get("/health", headers=bearer("pom_wrong")).status_code == 401


def test_openapi_declares_the_bearer_scheme(gateway):
    _, _, _, http = gateway
    doc = http.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http", "scheme": "bearer",
        "description": "an API token: `pom tokens create`, or the admin token in <POM_DATA_DIR>/admin-token"}
    assert doc["paths"]["/api/v1/jobs"]["get"]["security"] == [{"HTTPBearer": []}]


# -- websockets ---------------------------------------------------------------------------------
def _ws_app(directory: Directory) -> TestClient:
    app = FastAPI()
    errors.install(app)
    auth.install(app)
    app.dependency_overrides[auth.token_directory] = lambda: directory.lookup

    @app.websocket("/ws", dependencies=[auth.allow(auth.AGENTS)])
    async def ws(websocket: WebSocket, who: Principal = auth.Depends(auth.authenticate)):
        await websocket.accept()
        await websocket.send_json({"role": str(who.role), "agent": who.agent_id})
        await websocket.close()

    return TestClient(app)


def test_a_websocket_takes_its_token_from_the_query_and_is_closed_1008_without(gateway):
    directory = Directory()
    http = _ws_app(directory)
    agent = directory.add(Role.AGENT, agent_id=7)
    with http.websocket_connect(f"/ws?token={agent}") as ws:
        assert ws.receive_json() == {"role": "agent", "agent": 7}
    with http.websocket_connect("/ws", headers=bearer(agent)) as ws:
        assert ws.receive_json()["agent"] == 7
    for url in ("/ws", "/ws?token=pom_nope", f"/ws?token={directory.add(Role.INTEGRATION)}"):
        with pytest.raises(WebSocketDisconnect) as refused:
            with http.websocket_connect(url) as ws:
                ws.receive_json()
        assert refused.value.code == 1008


# -- the audit trail ----------------------------------------------------------------------------
def _audited() -> tuple[FastAPI, list, TestClient, dict]:
    app = FastAPI()
    errors.install(app)
    auth.install(app)
    headers = auth.for_tests(app, Role.SUPERVISOR)
    from fastapi import APIRouter

    router = APIRouter()

    @router.post("/things/{thing_id}/poke")
    def poke(thing_id: int, body: Any = Body(None)) -> dict:
        return {"ok": True}

    @router.post("/things", status_code=201)
    def create(body: dict) -> dict:
        return {"id": 42, "name": body.get("name")}

    @router.get("/things")
    def read() -> list:
        return []

    @router.post("/things/{thing_id}/fail")
    def fail(thing_id: int) -> dict:
        raise errors.Forbidden("no")

    app.include_router(router, prefix="/api/v1", dependencies=[auth.allow(auth.STAFF, auth.OPERATE)])
    return app, app.state.audit_entries, TestClient(app), headers


def test_a_change_is_recorded_with_who_what_and_a_read_or_a_failure_is_not():
    app, entries, http, headers = _audited()
    assert http.get("/api/v1/things", headers=headers).status_code == 200
    assert http.post("/api/v1/things/5/fail", headers=headers).status_code == 403
    assert http.post("/api/v1/things/5/poke").status_code == 401
    assert http.post("/api/v1/things/x/poke", headers=headers).status_code == 422
    assert entries == []
    r = http.post("/api/v1/things/5/poke?why=test", headers=headers,
                  json={"note": "n" * 300, "password": "hunter2", "deep": {"a": {"b": {"c": 1}}},
                        "rows": list(range(50)), "few": [1, 2]})
    assert r.status_code == 200
    (entry,) = entries
    assert entry == {
        "token_id": 1, "token_name": "test supervisor", "role": "supervisor", "method": "POST",
        "path": "/api/v1/things/5/poke", "route": "/api/v1/things/{thing_id}/poke", "resource": "things",
        "resource_id": "5", "status": 200,
        "summary": {"params": {"thing_id": "5"}, "query": {"why": "test"},
                    "body": {"note": "n" * 200 + "… (300 characters)", "password": "***",
                             "deep": {"a": "{1 keys}"}, "rows": "[50 items]", "few": [1, 2]}}}


def test_a_creation_records_the_new_id_and_a_large_body_its_size():
    app, entries, http, headers = _audited()
    assert http.post("/api/v1/things", headers=headers, json={"name": "x"}).status_code == 201
    assert entries[-1]["resource_id"] == "42" and entries[-1]["summary"] == {"body": {"name": "x"}}
    big = [{"external_id": str(i)} for i in range(10_000)]
    assert http.post("/api/v1/things/1/poke", headers=headers, json=big).status_code == 200
    assert set(entries[-1]["summary"]["body"]) == {"bytes"} and entries[-1]["summary"]["body"]["bytes"] > 64 * 1024


def test_an_audit_entry_that_cannot_be_written_does_not_fail_the_change(caplog):
    app, entries, http, headers = _audited()

    def broken(entry):
        raise OSError("database down")

    app.state.audit_writer = broken
    assert http.post("/api/v1/things/1/poke", headers=headers).status_code == 200
    assert "audit entry not written" in caplog.text


# -- the CLI ------------------------------------------------------------------------------------
def test_pom_tokens_create_list_revoke_send_the_token(monkeypatch, capsys):
    import json

    import httpx

    from api import cli

    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.headers.get("authorization"),
                     json.loads(request.content) if request.content else None))
        if request.method == "DELETE":
            return httpx.Response(204)
        if request.method == "POST":
            return httpx.Response(201, json={"id": 2, "role": "integration", "token": "pom_new"})
        return httpx.Response(200, json=[{"id": 1}])

    class Client(PomClient):
        def __init__(self, url=None, timeout=30.0, token=None):
            super().__init__("http://gw", timeout, token)
            self.http = httpx.Client(base_url="http://gw", headers=self.http.headers,
                                     transport=httpx.MockTransport(handler))

    monkeypatch.setattr(cli, "PomClient", Client)
    assert cli.main(["--token", "pom_admin", "tokens", "create", "--role", "integration", "--name", "crm",
                     "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["token"] == "pom_new" and "shown this once" in out.err
    assert cli.main(["--token", "pom_admin", "tokens", "list"]) == 0
    assert cli.main(["--token", "pom_admin", "tokens", "revoke", "2"]) == 0
    assert "token 2 revoked" in capsys.readouterr().err
    assert seen == [("POST", "/api/v1/tokens", "Bearer pom_admin", {"name": "crm", "role": "integration"}),
                    ("GET", "/api/v1/tokens", "Bearer pom_admin", None),
                    ("DELETE", "/api/v1/tokens/2", "Bearer pom_admin", None)]


def test_an_agent_token_acts_only_as_its_own_agent():
    mine = Principal(1, "ann's desktop", Role.AGENT, agent_id=7)
    assert T.may_act_as(mine, 7) and not T.may_act_as(mine, 8)
    assert not T.may_act_as(Principal(2, "unbound", Role.AGENT), 7)
    assert all(T.may_act_as(Principal(3, "boss", role), 8) for role in (Role.SUPERVISOR, Role.ADMIN))

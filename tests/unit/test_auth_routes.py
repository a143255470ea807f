"""Every route of the gateway is checked, and the authorisation matrix holds: generated from
`app.routes`, so a route added later is covered (and fails here if it carries no `Access`).

For each route × method: no token → 401 (unless the route is public by design); each role →
403 where it is not allowed, anything but 401/403 where it is. The real `authenticate` and
role checks run; only the token lookup is replaced, and every other dependency of the routes
is a stub that fails (a 500 or a 422 is fine here: the request got past the checks)."""
from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api import auth, deps
from api.app import create_app
from pom_actors.config import Settings
from pom_actors.core.tokens import Principal, Role

UNUSED_DB = "postgresql://unused@127.0.0.1:1/none"
FASTAPI_DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}   # no data: open
TOKENS = {role: f"pom_matrix-{role}" for role in Role}

# The matrix as docs/api.md ("Roles") states it, for the routes it lists: A admin,
# S supervisor, I integration, G agent; "-" public. Routes not listed here are still checked
# below against what their own rules say.
A, S, I, G = "admin", "supervisor", "integration", "agent"
STAFF, DEFINE, ADMIN, OVERSEE = {A, S, I}, {A, I}, {A}, {A, S}
MATRIX = {
    ("GET", "/health"): None,
    ("GET", "/metrics"): STAFF,
    ("POST", "/api/v1/strategies"): DEFINE,
    ("GET", "/api/v1/strategies"): STAFF,
    ("GET", "/api/v1/strategies/{strategy_id}"): STAFF,
    ("DELETE", "/api/v1/strategies/{strategy_id}"): DEFINE,
    ("POST", "/api/v1/lists"): DEFINE,
    ("GET", "/api/v1/lists"): STAFF,
    ("GET", "/api/v1/lists/{list_id}"): STAFF,
    ("PATCH", "/api/v1/lists/{list_id}"): DEFINE,
    ("DELETE", "/api/v1/lists/{list_id}"): DEFINE,
    ("GET", "/api/v1/lists/{list_id}/contacts"): STAFF,
    ("DELETE", "/api/v1/contacts/{contact_id}"): DEFINE,
    ("POST", "/api/v1/lists/{list_id}/contacts"): DEFINE,
    ("POST", "/api/v1/campaigns"): DEFINE,
    ("GET", "/api/v1/campaigns"): STAFF,
    ("GET", "/api/v1/jobs"): STAFF,
    ("GET", "/api/v1/jobs/{job_id}"): STAFF,
    ("POST", "/api/v1/jobs"): DEFINE,
    ("POST", "/api/v1/jobs/{job_id}/start"): STAFF,
    ("POST", "/api/v1/jobs/{job_id}/pause"): STAFF,
    ("POST", "/api/v1/jobs/{job_id}/resume"): STAFF,
    ("POST", "/api/v1/jobs/{job_id}/stop"): STAFF,
    ("POST", "/api/v1/filters"): DEFINE,
    ("GET", "/api/v1/filters"): STAFF,
    ("GET", "/api/v1/filters/{filter_id}"): STAFF,
    ("PUT", "/api/v1/filters/{filter_id}"): DEFINE,
    ("DELETE", "/api/v1/filters/{filter_id}"): DEFINE,
    ("POST", "/api/v1/lists/{list_id}/preview"): STAFF,
    ("GET", "/api/v1/jobs/{job_id}/filter"): STAFF,
    ("PUT", "/api/v1/jobs/{job_id}/filter"): STAFF,
    ("POST", "/api/v1/dnc-lists"): DEFINE,
    ("GET", "/api/v1/dnc-lists"): STAFF,
    ("GET", "/api/v1/dnc-lists/{list_id}"): STAFF,
    ("DELETE", "/api/v1/dnc-lists/{list_id}"): DEFINE,
    ("POST", "/api/v1/dnc-lists/{list_id}/entries"): STAFF,
    ("GET", "/api/v1/dnc-lists/{list_id}/entries"): STAFF,
    ("POST", "/api/v1/dnc-lists/{list_id}/entries/remove"): DEFINE,
    ("POST", "/api/v1/dnc-lists/lookup"): STAFF,
    ("POST", "/api/v1/dnc-lists/{list_id}/imports"): DEFINE,
    ("GET", "/api/v1/imports"): STAFF,
    ("GET", "/api/v1/campaigns/{campaign_id}/dnc-lists"): STAFF,
    ("PUT", "/api/v1/campaigns/{campaign_id}/dnc-lists/{list_id}"): DEFINE,
    ("DELETE", "/api/v1/campaigns/{campaign_id}/dnc-lists/{list_id}"): DEFINE,
    ("POST", "/api/v1/tokens"): ADMIN,
    ("GET", "/api/v1/tokens"): ADMIN,
    ("DELETE", "/api/v1/tokens/{token_id}"): ADMIN,
    ("GET", "/api/v1/audit"): OVERSEE,
    ("GET", "/api/v1/reports/attempts"): OVERSEE,
    ("GET", "/api/v1/reports/abandons"): OVERSEE,
    ("GET", "/api/v1/reports/agent-time"): OVERSEE,
    ("GET", "/api/v1/purges"): OVERSEE,
    ("GET", "/api/v1/purges/{run_id}"): OVERSEE,
    ("POST", "/api/v1/purges"): ADMIN,
    ("GET", "/api/v1/purges/config"): OVERSEE,
    ("PUT", "/api/v1/purges/config"): ADMIN,
    ("GET", "/api/v1/zones"): STAFF,
    ("GET", "/api/v1/zones/{name}"): STAFF,
    ("POST", "/api/v1/zones"): ADMIN,
    ("PUT", "/api/v1/zones/{name}"): ADMIN,
    ("POST", "/api/v1/zones/{name}/state"): ADMIN,
    ("DELETE", "/api/v1/zones/{name}"): ADMIN,
    ("GET", "/api/v1/agents"): STAFF,
    ("GET", "/api/v1/agents/{login}"): STAFF | {G},       # an agent token: its own agent only
    ("POST", "/api/v1/agents"): STAFF,
    ("PATCH", "/api/v1/agents/{login}"): STAFF,
    ("DELETE", "/api/v1/agents/{login}"): STAFF,
    ("GET", "/api/v1/completion-codes"): STAFF,
    ("GET", "/api/v1/completion-codes/{code_id}"): STAFF,
    ("POST", "/api/v1/completion-codes"): DEFINE,
    ("PATCH", "/api/v1/completion-codes/{code_id}"): DEFINE,
    ("DELETE", "/api/v1/completion-codes/{code_id}"): DEFINE,
    ("PATCH", "/api/v1/jobs/{job_id}"): STAFF,
    ("GET", "/api/v1/agent-scripts"): STAFF,
    ("GET", "/api/v1/agent-scripts/{script_id}"): STAFF,
    ("POST", "/api/v1/agent-scripts"): DEFINE,
    ("PATCH", "/api/v1/agent-scripts/{script_id}"): DEFINE,
    ("DELETE", "/api/v1/agent-scripts/{script_id}"): DEFINE,
    ("POST", "/demo/sms"): None,
    ("GET", "/demo/sms"): STAFF,
}


class Stub:
    def __getattr__(self, name):
        raise RuntimeError(f"stub .{name}: the request got past the checks")


def _app():
    app = create_app(Settings(database_url=UNUSED_DB, demo=True))
    principals = {value: Principal(i + 1, f"matrix {role}", role, value[:12], 1 if role == Role.AGENT else None)
                  for i, (role, value) in enumerate(TOKENS.items())}
    app.dependency_overrides[auth.token_directory] = lambda: principals.get
    for dep in (deps.db, deps.director, deps.pool, deps.actor_probe):
        app.dependency_overrides[dep] = Stub
    app.state.audit_writer = lambda entry: None
    return app


APP = _app()
RULES = auth.route_rules(APP)
CASES = [(m, p) for m, p, rules in RULES if p not in FASTAPI_DOCS]


@pytest.fixture(scope="module")
def http():
    return TestClient(APP, raise_server_exceptions=False)


def test_every_route_carries_an_access_rule():
    bare = [f"{m} {p}" for m, p, rules in RULES if not rules and p not in FASTAPI_DOCS]
    assert bare == [], ("routes without an auth dependency (api/auth.py: include the router with "
                        f"dependencies=[auth.allow(...)], or mark the route auth.public(reason)): {bare}")
    public = sorted(f"{m} {p}" for m, p, rules in RULES if p not in FASTAPI_DOCS
                    and auth.allowed_roles(rules, m) is None)
    assert public == ["GET /health", "POST /demo/sms"]


def test_the_documented_matrix_holds():
    found = {(m, p): auth.allowed_roles(rules, m) for m, p, rules in RULES}
    for key, roles in MATRIX.items():
        assert key in found, f"{key} is gone: update MATRIX and docs/api.md"
        assert (None if found[key] is None else {str(r) for r in found[key]}) == roles, key


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.mark.parametrize("method,path", [c for c in CASES if c[0] != "WEBSOCKET"])
def test_route_by_role(http, method, path):
    rules = next(r for m, p, r in RULES if (m, p) == (method, path))
    allowed = auth.allowed_roles(rules, method)
    url = _url(path)
    anonymous = http.request(method, url)
    if allowed is None:
        assert anonymous.status_code not in (401, 403), anonymous.text
    else:
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    if allowed is not None:
        bad = http.request(method, url, headers={"Authorization": "Bearer pom_unknown"})
        assert bad.status_code == 401 and bad.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    for role, value in TOKENS.items():
        r = http.request(method, url, headers={"Authorization": f"Bearer {value}"})
        if allowed is None or role in allowed:
            assert r.status_code not in (401, 403), (role, r.status_code, r.text)
        else:
            assert r.status_code == 403 and r.json()["error"] == "forbidden", (role, r.status_code, r.text)


@pytest.mark.parametrize("path", [p for m, p in CASES if m == "WEBSOCKET"])
def test_websocket_by_role(http, path):
    rules = next(r for m, p, r in RULES if (m, p) == ("WEBSOCKET", path))
    allowed = auth.allowed_roles(rules, "WEBSOCKET")
    assert allowed is not None, "a WebSocket is never public"
    for token in (None, "pom_unknown", *TOKENS.values()):
        role = next((r for r, v in TOKENS.items() if v == token), None)
        url = _url(path) + (f"?token={token}" if token else "")
        try:
            with http.websocket_connect(url):
                refused = None
        except WebSocketDisconnect as exc:
            refused = exc.code
        except Exception:                  # got past the checks; what serves it has no Ray here
            refused = None
        if role in allowed:
            assert refused != 1008, (role, path)
        else:
            assert refused == 1008, (role, path)

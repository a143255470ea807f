"""Auth on the real database: tokens created, used and revoked through the API (refused
within the cache's TTL everywhere), the admin token of the first start, and the audit log."""
from __future__ import annotations

import stat
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from alembic import command

from api import auth
from pom_actors.core.tokens import Role, admin_token_path, read_token_file
from pom_actors.store import auth as store
from pom_actors.store.database import alembic_config, libpq_url

from .conftest import api_client, scratch_database


@pytest.fixture(scope="module")
def admin(pom, admin_token):
    with api_client(pom.settings, admin_token) as client:
        yield client


def _token_id(admin, name: str) -> int:
    return next(t["id"] for t in admin.get("/api/v1/tokens").json() if t["name"] == name)


def test_a_token_is_created_used_and_revoked(pom, admin):
    r = admin.post("/api/v1/tokens", json={"name": "ops desk", "role": "supervisor"})
    assert r.status_code == 201, r.text
    made = r.json()
    value = made["token"]
    assert made["prefix"] == value[:12] and made["role"] == "supervisor" and made["revoked_at"] is None
    listed = {t["id"]: t for t in admin.get("/api/v1/tokens").json()}
    assert listed[made["id"]] == {k: v for k, v in made.items() if k != "token"}
    assert all("token" not in t and "token_hash" not in t for t in listed.values())

    with api_client(pom.settings, value) as ops, api_client(pom.settings, value) as elsewhere:
        assert ops.get("/api/v1/jobs").status_code == 200
        assert elsewhere.get("/api/v1/jobs").status_code == 200          # cached by that process too
        assert ops.post("/api/v1/tokens", json={"name": "x", "role": "admin"}).status_code == 403
        assert ops.delete(f"/api/v1/tokens/{made['id']}").status_code == 403
        assert ops.get("/api/v1/audit").status_code == 200

        with api_client(pom.settings, None) as anonymous:
            r = anonymous.get("/api/v1/jobs")
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert anonymous.get("/health").json() == {"status": "up"}

        as_ops = {"Authorization": f"Bearer {value}"}
        assert admin.get("/api/v1/jobs", headers=as_ops).status_code == 200     # cached in admin's process
        revoked_at = time.monotonic()
        assert admin.delete(f"/api/v1/tokens/{made['id']}").status_code == 204
        assert admin.get("/api/v1/jobs", headers=as_ops).status_code == 401     # the revoking process: at once
        r = admin.get("/api/v1/tokens").json()
        assert next(t for t in r if t["id"] == made["id"])["revoked_at"] is not None
        assert admin.delete(f"/api/v1/tokens/{made['id']}").status_code == 204     # again: no change
        assert admin.delete("/api/v1/tokens/2147483647").status_code == 404

        # another gateway process that had it cached refuses it within the TTL
        while elsewhere.get("/api/v1/jobs").status_code == 200:
            assert time.monotonic() - revoked_at < auth.CACHE_TTL_S + 1
            time.sleep(0.2)
        assert elsewhere.get("/api/v1/jobs").status_code == 401
    with api_client(pom.settings, value) as fresh:
        r = fresh.get("/api/v1/jobs")
        assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_token_requests_are_checked(admin):
    assert admin.post("/api/v1/tokens", json={"name": "a", "role": "root"}).status_code == 422
    assert admin.post("/api/v1/tokens", json={"name": "a", "role": "agent"}).status_code == 422
    assert admin.post("/api/v1/tokens", json={"name": "a", "role": "supervisor", "agent_id": 1}).status_code == 422
    assert admin.post("/api/v1/tokens", json={"name": "a", "role": "agent",
                                              "agent_id": 2147483647}).status_code == 404


def test_roles_on_the_real_gateway(pom, role_tokens):
    with api_client(pom.settings, role_tokens[Role.AGENT]) as agent, \
            api_client(pom.settings, role_tokens[Role.INTEGRATION]) as integration:
        assert agent.get("/api/v1/jobs").status_code == 403
        assert agent.get("/metrics").status_code == 403
        assert integration.get("/metrics").status_code == 200
        assert integration.get("/api/v1/audit").status_code == 403
        assert integration.post("/api/v1/jobs/2147483647/pause").status_code == 404


def test_changes_are_audited_with_who_what_and_when(pom, admin, role_tokens):
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    name = f"audited-{time.monotonic_ns()}"
    created = admin.post("/api/v1/lists", json={"name": name, "attributes": ["segment"]})
    assert created.status_code == 201
    list_id = created.json()["id"]
    assert admin.post("/api/v1/lists", json={"name": name}).status_code == 409        # failed: not audited
    assert admin.get(f"/api/v1/jobs?state=running").status_code == 200                 # a read: not audited
    rows = [{"external_id": "a1", "phone1": "+12125550199"}]
    assert admin.post(f"/api/v1/lists/{list_id}/contacts", json=rows).status_code == 200
    admin_id = _token_id(admin, "tests admin")

    with api_client(pom.settings, role_tokens[Role.SUPERVISOR]) as supervisor:
        page = supervisor.get("/api/v1/audit", params={"since": before.isoformat(), "token": admin_id,
                                                       "path": "/api/v1/lists"}).json()
    mine = [e for e in page["entries"] if e["path"].startswith("/api/v1/lists") and
            (e["resource_id"] == str(list_id))]
    assert [(e["method"], e["route"], e["status"]) for e in mine] == [
        ("POST", "/api/v1/lists", 201), ("POST", "/api/v1/lists/{list_id}/contacts", 200)]
    first, second = mine
    assert first["token_id"] == admin_id and first["token_name"] == "tests admin" and first["role"] == "admin"
    assert first["resource"] == "lists" and first["summary"] == {"body": {"name": name, "attributes": ["segment"]}}
    assert second["summary"]["params"] == {"list_id": str(list_id)} and second["summary"]["body"] == "[1 items]"
    at = datetime.fromisoformat(first["at"])
    assert before <= at <= datetime.now(timezone.utc)
    assert not any(e["method"] == "GET" for e in page["entries"])

    # pages: limit and after
    one = admin.get("/api/v1/audit", params={"limit": 1, "since": before.isoformat()}).json()
    assert len(one["entries"]) == 1 and one["next"] == one["entries"][0]["id"]
    two = admin.get("/api/v1/audit", params={"limit": 1, "after": one["next"], "since": before.isoformat()}).json()
    assert two["entries"][0]["id"] > one["next"]
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert admin.get("/api/v1/audit", params={"since": future}).json() == {"entries": [], "next": None}
    assert admin.get("/api/v1/audit", params={"path": "/api/v1/l%"}).json()["entries"] == []   # a prefix, not a pattern
    assert admin.get("/api/v1/audit", params={"limit": 0}).status_code == 422


# -- the first start, on a database of its own ------------------------------------------------------
@pytest.fixture
def scratch(pom):
    with scratch_database(pom.settings, "pom_auth_scratch") as url:
        command.upgrade(alembic_config(url), "head")
        yield url


def test_the_first_start_writes_an_admin_token_once(scratch, tmp_path):
    data = tmp_path / "data"
    said = auth.first_start(scratch, str(data))
    path = admin_token_path(data)
    value = read_token_file(path)
    assert value and value not in said and str(path) in said and "created" in said
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with psycopg.connect(libpq_url(scratch), autocommit=True) as c:
        assert store.principal(c, value).role == Role.ADMIN
        assert c.execute("SELECT token_hash FROM api_tokens").fetchall() != [(value,)]

    again = auth.first_start(scratch, str(data))                   # the next start: reused
    assert read_token_file(path) == value and "created" not in again and str(path) in again
    with psycopg.connect(libpq_url(scratch), autocommit=True) as c:
        assert store.active_admins(c) == 1
        with pytest.raises(store.LastAdmin):
            store.revoke_token(c, store.principal(c, value).token_id)

    path.unlink()                          # the database has an admin token: none is made
    assert "holds none" in auth.first_start(scratch, str(data)) and not path.exists()

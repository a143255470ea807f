"""The web services for external applications (api/routers/contacts.py) without a database:
the store's functions are replaced by an in-memory contact and attempts."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api import auth, deps
from api.app import create_app
from api.routers import contacts as router
from pom_actors.config import Settings
from pom_actors.core.agents.desk import DispositionError
from pom_actors.core.attributes import merge
from pom_actors.store.catalog import NotFound
from pom_actors.store.contacts import AttemptConflict

UNUSED_DB = "postgresql://unused@127.0.0.1:1/none"


@pytest.fixture
def state(monkeypatch) -> dict:
    data = {"contacts": {7: {"id": 7, "list_id": 1, "external_id": "c7", "attributes": {"tier": "gold"}}},
            "attempts": {(40, 2): {"id": "40.2", "state": "settled", "contact_id": 7, "campaign_id": 3,
                                   "verdict": "allowed", "code": "answered"},
                         (41, 1): {"id": "41.1", "state": "in_flight", "contact_id": 7, "campaign_id": 3}}}

    def contact(_conn, contact_id, lock=False):
        if contact_id not in data["contacts"]:
            raise NotFound(f"contact {contact_id} does not exist")
        return data["contacts"][contact_id]

    def attempt(_conn, item, number):
        if (item, number) not in data["attempts"]:
            raise NotFound(f"attempt {item}.{number} does not exist")
        return data["attempts"][(item, number)]

    def patch(_conn, contact_id, attributes):
        row = contact(_conn, contact_id)
        row["attributes"] = merge(row["attributes"], attributes)
        return row

    def set_code(_conn, item, number, code):
        found = attempt(_conn, item, number)
        if found["state"] == "in_flight":
            raise AttemptConflict(f"attempt {found['id']} is in flight")
        if code not in ("answered", "paid"):
            raise DispositionError("code", f"{code!r} is not a completion code of campaign 3")
        found["code"] = code
        return found

    monkeypatch.setattr(router.store, "contact", contact)
    monkeypatch.setattr(router.store, "attempt", attempt)
    monkeypatch.setattr(router.store, "patch_attributes", patch)
    monkeypatch.setattr(router.store, "set_code", set_code)
    monkeypatch.setattr(router.store, "current_attempt",
                        lambda _c, cid: contact(_c, cid) and data["attempts"][(41, 1)])
    return data


@pytest.fixture
def app(state):
    app = create_app(Settings(database_url=UNUSED_DB, demo=False))
    app.dependency_overrides[deps.db] = lambda: object()
    return app


@pytest.fixture
def http(app) -> TestClient:
    return TestClient(app, headers=auth.for_tests(app, "integration"))


def test_read_and_patch_a_contact_by_its_id_and_by_an_attempts(http, app, state):
    assert http.get("/api/v1/contacts/7").json()["attributes"] == {"tier": "gold"}
    r = http.patch("/api/v1/contacts/7/attributes", json={"balance": 12.5, "tier": None})
    assert r.status_code == 200 and r.json()["attributes"] == {"balance": 12.5}
    r = http.patch("/api/v1/attempts/40.2/contact/attributes", json={"ivr": {"menu": [1, 3]}})
    assert r.json()["attributes"] == {"balance": 12.5, "ivr": {"menu": [1, 3]}}
    assert http.get("/api/v1/attempts/41.1/contact").json()["id"] == 7
    audited = [(e["method"], e["route"], e["role"]) for e in app.state.audit_entries]
    assert audited == [("PATCH", "/api/v1/contacts/{contact_id}/attributes", "integration"),
                       ("PATCH", "/api/v1/attempts/{attempt_id}/contact/attributes", "integration")]


@pytest.mark.parametrize("body, path", [
    ({"deep": [[[[[1]]]]]}, "attributes.deep"),
    ({}, "attributes"),
    ({"x" * 101: 1}, "attributes"),
])
def test_a_patch_out_of_bounds_is_a_422_naming_the_field_and_changes_nothing(http, state, body, path):
    r = http.patch("/api/v1/contacts/7/attributes", json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == path
    assert state["contacts"][7]["attributes"] == {"tier": "gold"}


@pytest.mark.parametrize("body", [[1, 2], "text", None, {"a": "nul\u0000"}, {"n": 2**64}])
def test_a_patch_that_is_not_a_clean_object_is_a_422(http, state, body):
    r = http.patch("/api/v1/contacts/7/attributes", json=body)
    assert r.status_code == 422, r.text
    assert state["contacts"][7]["attributes"] == {"tier": "gold"}


def test_unknown_contacts_and_attempts_are_404(http):
    assert http.get("/api/v1/contacts/8").status_code == 404
    assert http.get("/api/v1/attempts/40.3").status_code == 404
    assert http.get("/api/v1/attempts/40.9999999999").status_code == 422     # beyond the pattern
    assert http.get("/api/v1/attempts/40.999999999").status_code == 404      # beyond int4: no such attempt
    assert http.patch("/api/v1/attempts/9.1/contact/attributes", json={"a": 1}).status_code == 404


@pytest.mark.parametrize("bad", ["40", "40.", ".2", "40.2.1", "0.1", "40.0", "a.b", "-1.2", "1" * 19 + ".1"])
def test_a_malformed_attempt_id_is_a_422(http, bad):
    assert http.get(f"/api/v1/attempts/{bad}").status_code == 422


def test_the_current_attempt_of_a_contact(http):
    assert http.get("/api/v1/contacts/7/attempt").json() == {
        "contact_id": 7, "attempt": {"id": "41.1", "state": "in_flight", "contact_id": 7, "campaign_id": 3}}
    assert http.get("/api/v1/contacts/8/attempt").status_code == 404
    assert http.get(f"/api/v1/contacts/{2**63}/attempt").status_code == 422


def test_set_the_code_of_an_attempt(http, state):
    r = http.put("/api/v1/attempts/40.2/code", json={"code": "paid"})
    assert r.status_code == 200 and r.json()["code"] == "paid"
    r = http.put("/api/v1/attempts/40.2/code", json={"code": "bogus"})
    assert r.status_code == 422 and r.json()["errors"] == [
        {"path": "code", "message": "'bogus' is not a completion code of campaign 3"}]
    r = http.put("/api/v1/attempts/41.1/code", json={"code": "paid"})
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    assert http.put("/api/v1/attempts/40.2/code", json={"code": ""}).status_code == 422
    assert state["attempts"][(40, 2)]["code"] == "paid"


@pytest.mark.parametrize("role, status", [("supervisor", 403), ("agent", 403), ("admin", 200)])
def test_only_admin_and_integration_tokens(app, role, status):
    headers = auth.for_tests(app, role, agent_id=1 if role == "agent" else None)
    http = TestClient(app, headers=headers)
    assert http.get("/api/v1/contacts/7").status_code == status
    assert http.put("/api/v1/attempts/40.2/code", json={"code": "paid"}).status_code == status

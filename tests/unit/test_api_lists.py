"""Contact lists changed, deleted and read page by page, and a contact deleted, without a
database (api/routers/lists.py, contacts.py): bounds and refusals answered before the store,
and the store's own refusals (in use, in flight) as problem documents."""
from __future__ import annotations

import pytest

from api.routers import contacts as contacts_router
from api.routers import lists as router
from pom_actors.store.catalog import NotFound
from pom_actors.store.contacts import AttemptConflict
from pom_actors.store.lists import ListInUse


@pytest.fixture
def calls(monkeypatch) -> list:
    seen = []

    def update(_conn, list_id, **changes):
        seen.append(("update", list_id, changes))
        return {"id": list_id, "name": changes.get("name", "old"), "contacts": 0}

    def delete(_conn, list_id):
        seen.append(("delete", list_id))
        if list_id == 3:
            raise ListInUse("contact list 3 is used by campaign(s) spring")
        if list_id == 4:
            raise NotFound("contact list 4 does not exist")
        return 0

    def contacts(_conn, list_id, after=0, limit=None):
        seen.append(("contacts", list_id, after, limit))
        return [{"id": i} for i in range(after + 1, after + limit + 1)]

    def delete_contact(_conn, contact_id):
        seen.append(("delete_contact", contact_id))
        if contact_id == 7:
            raise AttemptConflict("contact 7 has attempt 40.2 in flight")

    monkeypatch.setattr(router.store, "update", update)
    monkeypatch.setattr(router.store, "delete", delete)
    monkeypatch.setattr(router.store, "contacts", contacts)
    monkeypatch.setattr(contacts_router.store, "delete_contact", delete_contact)
    return seen


@pytest.mark.parametrize("body, path", [
    ({"name": ""}, "name"), ({"name": "x" * 201}, "name"), ({"description": "d" * 1001}, "description"),
    ({"name": "a\x00b"}, "name"), ({"attributes": ["tier"]}, "attributes"), ({"name": 5}, "name"),
])
def test_a_list_change_out_of_bounds_is_refused_at_its_field(http, calls, body, path):
    answer = http.patch("/api/v1/lists/1", json=body)
    assert answer.status_code == 422, answer.text
    assert path in [e["path"] for e in answer.json()["errors"]]
    assert calls == []


def test_a_list_change_passes_only_the_fields_sent(http, calls):
    answer = http.patch("/api/v1/lists/1", json={"description": "autumn"})
    assert answer.status_code == 200
    assert calls == [("update", 1, {"description": "autumn"})]


@pytest.mark.parametrize("list_id", ["0", "-1", str(2**31), "x"])
def test_a_list_id_out_of_range_is_refused(http, calls, list_id):
    for method in ("PATCH", "DELETE", "GET"):
        path = f"/api/v1/lists/{list_id}" + ("/contacts" if method == "GET" else "")
        assert http.request(method, path, json={} if method == "PATCH" else None).status_code == 422
    assert calls == []


def test_a_list_in_use_is_a_conflict_naming_its_users_and_an_unknown_one_404(http, calls):
    refused = http.delete("/api/v1/lists/3")
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert (refused.json()["error"], "spring" in refused.json()["detail"]) == ("conflict", True)
    assert http.delete("/api/v1/lists/4").status_code == 404
    assert http.delete("/api/v1/lists/5").status_code == 204


def test_a_page_of_contacts_links_to_the_next(http, calls):
    answer = http.get("/api/v1/lists/2/contacts", params={"limit": 3, "after": 10})
    assert [c["id"] for c in answer.json()] == [11, 12, 13]
    assert "after=13" in answer.headers["link"] and 'rel="next"' in answer.headers["link"]
    assert calls == [("contacts", 2, 10, 3)]
    assert http.get("/api/v1/lists/2/contacts", params={"limit": 1001}).status_code == 422


def test_a_contact_in_flight_is_not_deleted(http, calls):
    assert http.delete("/api/v1/contacts/7").status_code == 409
    assert http.delete("/api/v1/contacts/8").status_code == 204
    assert http.delete(f"/api/v1/contacts/{2**63}").status_code == 422
    assert calls == [("delete_contact", 7), ("delete_contact", 8)]

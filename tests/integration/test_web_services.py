"""The web services for external applications against the real database: a contact's
attributes read and changed by contact and attempt id, the attempt in flight for a contact,
and the completion code of a settled attempt set — through the gateway, with an integration
token, and in the audit log."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from pom_actors.core.tokens import Role

from .conftest import api_client, phone_contacts

STRATEGY = {
    "name": "ivr",
    "initial": "call",
    "custom_codes": ["paid", {"name": "promised", "final": True}],
    "handlers": {"call": {"type": "call", "addresses": ["phone1"], "message": "Hello {first_name}",
                          "pacing": {"max_concurrent": 50}, "results": {"default": "done"}}},
}


@pytest.fixture(scope="module")
def http(pom, role_tokens):
    with api_client(pom.settings, role_tokens[Role.INTEGRATION]) as client:
        yield client


def test_attributes_by_contact_and_by_attempt_and_the_code_of_a_settled_attempt(campaigns, conn, http, pom,
                                                                                admin_token):
    job_id = campaigns.start(campaigns.make(STRATEGY, phone_contacts(12)))
    assert campaigns.wait(job_id, timeout=120)["state"] == "completed"
    item, number, contact_id, code = conn.execute(
        "SELECT work_item_id, attempt_no, contact_id, code FROM attempts WHERE job_id = %s AND verdict = 'allowed' "
        "ORDER BY work_item_id LIMIT 1", (job_id,)).fetchone()
    attempt_id = f"{item}.{number}"

    r = http.get(f"/api/v1/attempts/{attempt_id}")
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("id", "state", "contact_id", "job_id", "code")} == {
        "id": attempt_id, "state": "settled", "contact_id": contact_id, "job_id": job_id, "code": code}
    assert http.get(f"/api/v1/attempts/{attempt_id}/contact").json()["attributes"] == {"segment": "gold"}

    r = http.patch(f"/api/v1/attempts/{attempt_id}/contact/attributes", json={"balance": 120, "segment": None})
    assert r.status_code == 200 and r.json()["attributes"] == {"balance": 120}
    r = http.patch(f"/api/v1/contacts/{contact_id}/attributes", json={"ivr": {"choice": [1, 4]}})
    assert r.json()["attributes"] == {"balance": 120, "ivr": {"choice": [1, 4]}}
    stored = conn.execute("SELECT attributes FROM contacts WHERE id = %s", (contact_id,)).fetchone()[0]
    assert stored == {"balance": 120, "ivr": {"choice": [1, 4]}}
    r = http.patch(f"/api/v1/contacts/{contact_id}/attributes", json={f"k{i}": i for i in range(199)})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "attributes"
    assert conn.execute("SELECT attributes FROM contacts WHERE id = %s", (contact_id,)).fetchone()[0] == stored

    r = http.put(f"/api/v1/attempts/{attempt_id}/code", json={"code": "promised"})     # a custom code
    assert r.status_code == 200 and r.json()["code"] == "promised"
    r = http.put(f"/api/v1/attempts/{attempt_id}/code", json={"code": "busy"})          # a system code
    assert r.status_code == 200 and r.json()["code"] == "busy"
    r = http.put(f"/api/v1/attempts/{attempt_id}/code", json={"code": "sale"})          # another campaign's
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "code"
    (paid,) = conn.execute("SELECT c.id FROM completion_codes c JOIN jobs j ON j.campaign_id = c.campaign_id "
                           "WHERE j.id = %s AND c.name = 'paid'", (job_id,)).fetchone()
    with api_client(pom.settings, admin_token) as admin:                                # the campaign's, disabled
        assert admin.patch(f"/api/v1/completion-codes/{paid}", json={"enabled": False}).json()["enabled"] is False
        r = http.put(f"/api/v1/attempts/{attempt_id}/code", json={"code": "paid"})
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == "code", r.text
        assert "disabled" in r.json()["errors"][0]["message"]
        assert admin.patch(f"/api/v1/completion-codes/{paid}", json={"enabled": True}).json()["enabled"] is True
    code_now, details = conn.execute("SELECT code, details FROM attempts WHERE work_item_id = %s AND attempt_no = %s",
                                     (item, number)).fetchone()
    assert code_now == "busy" and details["code_set"]["from"] == "promised"

    audit = conn.execute("SELECT method, route, role FROM audit_log WHERE resource_id = %s ORDER BY id",
                         (attempt_id,)).fetchall()
    assert audit == [("PATCH", "/api/v1/attempts/{attempt_id}/contact/attributes", "integration"),
                     ("PUT", "/api/v1/attempts/{attempt_id}/code", "integration"),
                     ("PUT", "/api/v1/attempts/{attempt_id}/code", "integration")]


def test_a_batch_of_codes_gives_each_attempt_its_own_result(campaigns, conn):
    """store.contacts.set_codes (a Campaign Manager's dispositions): the good ones written,
    each refused one with set_code's error, nothing else touched."""
    from pom_actors.core.agents.desk import DispositionError
    from pom_actors.store.catalog import NotFound
    from pom_actors.store.contacts import set_codes

    job_id = campaigns.start(campaigns.make(STRATEGY, phone_contacts(4)))
    assert campaigns.wait(job_id, timeout=120)["state"] == "completed"
    rows = conn.execute("SELECT work_item_id, attempt_no, code FROM attempts WHERE job_id = %s AND verdict = 'allowed' "
                        "ORDER BY work_item_id", (job_id,)).fetchall()
    (a, n1, c1), (b, n2, _), (c, n3, c3) = rows[:3]
    with conn.transaction():
        out = set_codes(conn, [(a, n1, "promised"), (b, n2, "sale"), (a + 10**9, 1, "paid"), (c, n3, c3)])
    assert out[0]["code"] == "promised" and out[0]["id"] == f"{a}.{n1}"
    assert isinstance(out[1], DispositionError) and out[1].field == "code"
    assert isinstance(out[2], NotFound)
    assert out[3]["code"] == c3
    after = dict(((w, n), (code, d.get("code_set"))) for w, n, code, d in conn.execute(
        "SELECT work_item_id, attempt_no, code, details FROM attempts WHERE job_id = %s", (job_id,)).fetchall())
    assert after[(a, n1)][0] == "promised" and after[(a, n1)][1]["from"] == c1
    assert after[(b, n2)][1] is None and after[(c, n3)] == (c3, None)     # refused; the code it had


def test_the_attempt_in_flight_of_a_contact(campaigns, conn, http, pom, admin_token):
    campaign_id = campaigns.make(STRATEGY, phone_contacts(3))
    with api_client(pom.settings, admin_token) as admin:
        job_id = admin.post("/api/v1/jobs", json={"campaign": campaign_id, "start": False}).json()["id"]
    item, contact_id = conn.execute("SELECT id, contact_id FROM work_items WHERE job_id = %s ORDER BY id LIMIT 1",
                                    (job_id,)).fetchone()
    assert http.get(f"/api/v1/contacts/{contact_id}/attempt").json() == {"contact_id": contact_id, "attempt": None}
    # what a claim writes (store/work.py): the item in flight with its attempt number
    conn.execute("UPDATE work_items SET state = 'in_flight', attempts = attempts + 1, in_flight_epoch = 1, "
                 "in_flight_at = now() WHERE id = %s", (item,))
    try:
        found = http.get(f"/api/v1/contacts/{contact_id}/attempt").json()["attempt"]
        assert {k: found[k] for k in ("id", "state", "job_id", "contact_id", "code")} == {
            "id": f"{item}.1", "state": "in_flight", "job_id": job_id, "contact_id": contact_id, "code": None}
        assert http.get(f"/api/v1/attempts/{item}.1").json()["state"] == "in_flight"
        r = http.put(f"/api/v1/attempts/{item}.1/code", json={"code": "paid"})
        assert r.status_code == 409 and r.json()["error"] == "conflict"
        assert http.get(f"/api/v1/attempts/{item}.2").status_code == 404
    finally:
        conn.execute("UPDATE work_items SET state = 'ready', attempts = 0, in_flight_epoch = NULL, "
                     "in_flight_at = NULL WHERE id = %s", (item,))
        campaigns.command(job_id, "stop")


def test_concurrent_attribute_changes_all_land(campaigns, conn, http):
    campaigns.make(STRATEGY, phone_contacts(1))
    contact_id = conn.execute("SELECT max(id) FROM contacts").fetchone()[0]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: http.patch(f"/api/v1/contacts/{contact_id}/attributes",
                                                     json={f"step{i}": i}).status_code, range(16)))
    assert answers == [200] * 16
    attributes = conn.execute("SELECT attributes FROM contacts WHERE id = %s", (contact_id,)).fetchone()[0]
    assert attributes == {"segment": "gold", **{f"step{i}": i for i in range(16)}}
    # and each change is in the audit log: its entry is written while its route still holds the
    # request's connection, so not from the requests' pool (eight at once held all of it, and
    # the entries waited 30 s for a ninth, then were lost)
    audited = conn.execute("SELECT count(*) FROM audit_log WHERE method = 'PATCH' AND resource_id = %s",
                           (str(contact_id),)).fetchone()[0]
    assert audited == 16


def test_roles_other_than_admin_and_integration_are_refused(pom, role_tokens):
    with api_client(pom.settings, role_tokens[Role.SUPERVISOR]) as supervisor:
        assert supervisor.get("/api/v1/contacts/1").status_code == 403


def test_the_client_over_a_served_gateway(campaigns, conn, pom, role_tokens, admin_token):
    """PomClient's web-service, campaign, rule, page and idempotency methods, and its typed
    exceptions carrying the problem details, against uvicorn."""
    from api import client as pom_client

    from .conftest import served_gateway

    campaign_id = campaigns.make(STRATEGY, phone_contacts(3))
    contact_id = conn.execute("SELECT max(id) FROM contacts").fetchone()[0]
    with served_gateway(pom.settings) as address:
        url = f"http://{address}"
        ivr = pom_client.PomClient(url, token=role_tokens[Role.INTEGRATION])
        admin = pom_client.PomClient(url, token=admin_token)
        assert ivr.update_contact_attributes(contact_id, {"paid": True})["attributes"]["paid"] is True
        assert ivr.contact(contact_id)["attributes"] == {"segment": "gold", "paid": True}
        assert ivr.current_attempt(contact_id) is None
        with pytest.raises(pom_client.Invalid) as refused:
            ivr.update_contact_attributes(contact_id, {"deep": [[[[[1]]]]]})
        assert refused.value.status == 422 and refused.value.errors[0]["path"] == "attributes.deep"
        with pytest.raises(pom_client.NotFound) as missing:
            ivr.attempt("999999999.1")
        assert missing.value.error == "not_found" and "999999999.1" in missing.value.detail
        with pytest.raises(pom_client.Forbidden):
            pom_client.PomClient(url, token=role_tokens[Role.SUPERVISOR]).contact(contact_id)

        job = admin.create_job(campaign_id, start=False, idempotency_key=f"client-{campaign_id}")
        assert admin.create_job(campaign_id, start=False, idempotency_key=f"client-{campaign_id}")["id"] == job["id"]
        with pytest.raises(pom_client.Conflict):
            admin.delete_campaign(campaign_id)
        admin.command(job["id"], "stop")
        rule = admin.create_rule("max_attempts_contact", {"max": 3}, campaign_id=campaign_id)
        assert admin.rules(campaign_id=campaign_id) == [rule]
        assert admin.replace_rule(rule["id"], "max_attempts_contact", enabled=False)["enabled"] is False
        assert [j["id"] for j in admin.pages("/api/v1/jobs", limit=1)] == [
            i for (i,) in conn.execute("SELECT id FROM jobs ORDER BY id")]
        assert admin.update_campaign(campaign_id, enabled=False)["enabled"] is False
        admin.delete_rule(rule["id"])
        admin.delete_campaign(campaign_id)
        with pytest.raises(pom_client.NotFound):
            admin.campaign(campaign_id)

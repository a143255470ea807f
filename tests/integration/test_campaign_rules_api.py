"""Campaigns updated, disabled and deleted, and the Rule Editor, through the gateway against the
real database — a rule created through the API is applied by the running rule engine."""
from __future__ import annotations

import time


from .conftest import phone_contacts

STRATEGY = {"name": "editor", "initial": "call",
            "handlers": {"call": {"type": "call", "addresses": ["phone1"], "message": "Hello",
                                  "pacing": {"max_concurrent": 50}, "results": {"default": "done"}}}}


def test_a_campaign_updated_disabled_and_deleted(campaigns, conn, http):
    campaign_id = campaigns.make(STRATEGY, phone_contacts(5))
    r = http.patch(f"/api/v1/campaigns/{campaign_id}", json={
        "priority": 9, "description": "winter", "schedule": {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}})
    assert r.status_code == 200, r.text
    assert (r.json()["priority"], r.json()["description"], r.json()["schedule"]["cron"]) == (9, "winter", "0 9 * * 1-5")
    r = http.patch(f"/api/v1/campaigns/{campaign_id}", json={"schedule": {"cron": "*/99999 * * * *"}})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "schedule.cron"
    r = http.patch(f"/api/v1/campaigns/{campaign_id}", json={"schedule": None, "enabled": False})
    assert (r.json()["schedule"], r.json()["enabled"], r.json()["priority"]) == (None, False, 9)

    r = http.post("/api/v1/jobs", json={"campaign": campaign_id})
    assert r.status_code == 409 and "disabled" in r.json()["detail"]
    http.patch(f"/api/v1/campaigns/{campaign_id}", json={"enabled": True})
    job_id = http.post("/api/v1/jobs", json={"campaign": campaign_id, "start": False}).json()["id"]

    r = http.delete(f"/api/v1/campaigns/{campaign_id}")
    assert r.status_code == 409 and f"job {job_id} queued" in r.json()["detail"]
    assert http.get(f"/api/v1/campaigns/{campaign_id}").status_code == 200
    assert http.post(f"/api/v1/jobs/{job_id}/stop").json()["state"] == "stopped"
    http.post("/api/v1/rules", json={"kind": "max_attempts_contact", "campaign_id": campaign_id, "params": {"max": 2}})

    assert http.delete(f"/api/v1/campaigns/{campaign_id}").status_code == 204
    assert http.get(f"/api/v1/campaigns/{campaign_id}").status_code == 404
    assert http.delete(f"/api/v1/campaigns/{campaign_id}").status_code == 404
    left = conn.execute("SELECT (SELECT count(*) FROM jobs WHERE id = %s), (SELECT count(*) FROM work_items WHERE "
                        "job_id = %s), (SELECT count(*) FROM rules WHERE campaign_id = %s)",
                        (job_id, job_id, campaign_id)).fetchone()
    assert left == (0, 0, 0)


def test_rules_edited_through_the_api_and_applied_by_the_rule_engine(campaigns, conn, http):
    campaign_id = campaigns.make(STRATEGY, phone_contacts(6))
    r = http.post("/api/v1/rules", json={"kind": "channel", "campaign_id": campaign_id, "params": {"blocked": []}})
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    assert http.get(f"/api/v1/rules/{rule_id}").json() == {
        "id": rule_id, "campaign_id": campaign_id, "kind": "channel", "enabled": True, "params": {"blocked": []}}
    r = http.put(f"/api/v1/rules/{rule_id}", json={"kind": "channel", "campaign_id": campaign_id,
                                                   "params": {"blocked": ["call"]}})
    assert r.json()["params"] == {"blocked": ["call"]}
    assert [x["id"] for x in http.get("/api/v1/rules", params={"campaign_id": campaign_id}).json()] == [rule_id]
    assert all(x["campaign_id"] is None for x in http.get("/api/v1/rules", params={"system": True}).json())

    bad = http.put(f"/api/v1/rules/{rule_id}", json={"kind": "nuisance", "campaign_id": campaign_id,
                                                     "params": {"max": 3, "period_s": -1}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "params.period_s"
    assert http.post("/api/v1/rules", json={"kind": "channel", "campaign_id": 2**31 - 1,
                                            "params": {"blocked": []}}).status_code == 404
    assert http.put("/api/v1/rules/2147483647", json={"kind": "window"}).status_code == 404

    time.sleep(6)                                    # the rule engine reads the rules every 5 s
    job_id = campaigns.start(campaign_id)
    assert campaigns.wait(job_id, timeout=120)["state"] == "completed"
    codes = conn.execute("SELECT DISTINCT code FROM attempts WHERE job_id = %s", (job_id,)).fetchall()
    assert codes == [("channel_restricted",)]

    assert http.put(f"/api/v1/rules/{rule_id}", json={"kind": "channel", "campaign_id": campaign_id,
                                                      "enabled": False}).json()["enabled"] is False
    assert http.delete(f"/api/v1/rules/{rule_id}").status_code == 204
    assert http.get(f"/api/v1/rules/{rule_id}").status_code == 404
    assert http.delete(f"/api/v1/rules/{rule_id}").status_code == 404


def test_list_routes_page_by_id_with_a_next_link(campaigns, conn, http):
    for _ in range(3):
        campaigns.make(STRATEGY, phone_contacts(1))
    for path, table in (("/api/v1/campaigns", "campaigns"), ("/api/v1/rules", "rules"), ("/api/v1/jobs", "jobs")):
        seen, url, pages = [], f"{path}?limit=2", 0
        while url:
            r = http.get(url)
            assert r.status_code == 200, r.text
            seen += [x["id"] for x in r.json()]
            pages += 1
            url = r.headers.get("link", "")[1:].split(">")[0] or None
        assert seen == [i for (i,) in conn.execute(f"SELECT id FROM {table} ORDER BY id")]
        assert pages == len(seen) // 2 + 1
    enabled = http.get("/api/v1/campaigns", params={"enabled": False}).json()
    assert all(not c["enabled"] for c in enabled)

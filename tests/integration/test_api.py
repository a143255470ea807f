"""The gateway, through its own HTTP interface: health, definitions, jobs, errors."""
from __future__ import annotations



from .conftest import phone_contacts


def test_health_reports_each_component(http):
    body = http.get("/health").json()
    assert body["status"] == "up"
    components = body["components"]
    assert {"database", "director", "rule_engine"} <= set(components)
    assert any(name.startswith("pom-gateway-") for name in components)


def test_campaign_defined_and_run_through_the_api(http):
    lst = http.post("/api/v1/lists", json={"name": "api-list", "attributes": ["segment"]}).json()
    rows = phone_contacts(40)
    rows[3]["phone1"] = "12"                       # a bad row: reported, the others land
    rows[7]["email"] = "not-an-address"
    r = http.post(f"/api/v1/lists/{lst['id']}/contacts", json=rows)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_contacts" and body["imported"] == 38
    assert [(e["line"], e["field"]) for e in body["errors"]] == [(4, "phone1"), (8, "email")]

    bad = {"name": "api", "initial": "call", "handlers": {"call": {
        "type": "call", "message": "Hi {nickname}", "results": {"busy": "goto nowhere"}}}}
    r = http.post("/api/v1/strategies", params={"list_id": lst["id"]}, json=bad)
    assert r.status_code == 422 and r.json()["error"] == "invalid_strategy"
    paths = {e["path"] for e in r.json()["errors"]}
    assert paths == {"handlers.call.results.busy.handler", "handlers.call.message"}

    good = {"name": "api", "initial": "call", "handlers": {"call": {
        "type": "call", "message": "Hi {first_name}", "pacing": {"max_concurrent": 5},
        "results": {"default": "done"}}}}
    strategy = http.post("/api/v1/strategies", params={"list_id": lst["id"]}, json=good).json()
    camp = http.post("/api/v1/campaigns", json={"name": "api-campaign", "strategy_id": strategy["id"],
                                                "list_id": lst["id"]}).json()
    job = http.post("/api/v1/jobs", json={"campaign": "api-campaign", "start": False})
    assert job.status_code == 201 and job.json()["state"] == "queued"
    job_id = job.json()["id"]
    assert job.json()["total"] == 38 and job.json()["actions"] == ["start", "stop"]

    r = http.post(f"/api/v1/jobs/{job_id}/pause")
    assert r.status_code == 409
    assert r.json()["error"] == "illegal_transition" and r.json()["allowed"] == ["start", "stop"]
    assert http.post(f"/api/v1/jobs/{job_id}/start").json()["state"] == "running"
    listed = {j["id"]: j for j in http.get("/api/v1/jobs").json()}
    assert listed[job_id]["campaign_id"] == camp["id"]
    assert sum(listed[job_id]["work_items"].values()) == 38


def test_conflicts_and_bad_definitions_are_4xx_with_the_fault(http):
    lst = http.post("/api/v1/lists", json={"name": "dup-list"}).json()
    again = http.post("/api/v1/lists", json={"name": "dup-list"})
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    rows = phone_contacts(3)
    assert http.post(f"/api/v1/lists/{lst['id']}/contacts", json=rows[:2]).status_code == 200
    r = http.post(f"/api/v1/lists/{lst['id']}/contacts", json=[rows[2], {"external_id": ""}, rows[0]])
    assert r.status_code == 422 and r.json()["imported"] == 1
    assert [(e["line"], e["field"]) for e in r.json()["errors"]] == [(2, "external_id"), (3, "external_id")]
    strategy = http.post("/api/v1/strategies", json={"name": "dup", "initial": "c", "handlers": {
        "c": {"type": "call", "message": "x", "results": {"default": "done"}}}}).json()
    bad = http.post("/api/v1/campaigns", json={"name": "bad-finish", "strategy_id": strategy["id"],
                                               "list_id": lst["id"], "finish": {"max_processed": -3},
                                               "schedule": {"cron": "not a cron"}})
    assert bad.status_code == 422
    assert {e["path"] for e in bad.json()["errors"]} == {"finish.max_processed", "schedule.cron"}
    dangling = http.post("/api/v1/campaigns", json={"name": "dangling", "strategy_id": strategy["id"],
                                                    "list_id": 999999})
    assert dangling.status_code == 404


def test_unknown_things_are_404(http):
    assert http.get("/api/v1/jobs/999999").json()["error"] == "not_found"
    r = http.post("/api/v1/jobs", json={"campaign": "no-such-campaign"})
    assert r.status_code == 404 and "no-such-campaign" in r.json()["message"]


def _queued_job(http, name: str) -> int:
    lst = http.post("/api/v1/lists", json={"name": name}).json()
    assert http.post(f"/api/v1/lists/{lst['id']}/contacts", json=phone_contacts(2)).status_code == 200
    strategy = http.post("/api/v1/strategies", json={"name": name, "initial": "c", "handlers": {
        "c": {"type": "call", "message": "x", "results": {"default": "done"}}}}).json()
    http.post("/api/v1/campaigns", json={"name": name, "strategy_id": strategy["id"], "list_id": lst["id"]})
    return http.post("/api/v1/jobs", json={"campaign": name, "start": False}).json()["id"]


def test_the_command_comes_from_the_path_never_a_parameter(http):
    job_id = _queued_job(http, "path-action")
    r = http.post(f"/api/v1/jobs/{job_id}/pause", params={"_event": "start"})
    assert r.status_code == 409 and r.json()["event"] == "pause"
    assert http.get(f"/api/v1/jobs/{job_id}").json()["state"] == "queued"     # nothing started
    r = http.post(f"/api/v1/jobs/{job_id}/stop", params={"_event": "start"})
    assert r.status_code == 200 and r.json()["state"] == "stopped"
    assert http.post(f"/api/v1/jobs/{job_id}/finish").status_code == 404

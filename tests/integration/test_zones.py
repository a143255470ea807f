"""Zones through the gateway on the real database and director (one Ray node, a server of the
default zone): creation, failovers checked (unknown, itself, a cycle), states, deletion
refused while in use; a campaign of a zone without servers runs in its failover zone and
completes; a job whose zone has neither servers nor failover waits, visibly, until stopped.
The shared default zone is never set down here (other modules' jobs run in it)."""
from __future__ import annotations

import json
import time


from api.cli import main

from .conftest import phone_contacts, served_gateway


def _campaign(http, name: str, n: int, zone: str | None = None) -> dict:
    lst = http.post("/api/v1/lists", json={"name": name}).json()
    assert http.post(f"/api/v1/lists/{lst['id']}/contacts", json=phone_contacts(n)).status_code == 200
    strategy = http.post("/api/v1/strategies", json={"name": name, "initial": "c", "handlers": {
        "c": {"type": "call", "message": "x", "results": {"default": "done"}}}}).json()
    body = {"name": name, "strategy_id": strategy["id"], "list_id": lst["id"]}
    return http.post("/api/v1/campaigns", json={**body, "zone": zone} if zone else body)


def _until(http, job_id: int, predicate, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = http.get(f"/api/v1/jobs/{job_id}").json()
        if predicate(job):
            return job
        assert time.monotonic() < deadline, f"job {job_id}: {job}"
        time.sleep(0.2)


def _zones(http) -> dict[str, dict]:
    return {z["name"]: z for z in http.get("/api/v1/zones").json()["zones"]}


def test_zones_are_created_checked_and_listed_with_their_servers(http):
    r = http.post("/api/v1/zones", json={"name": "z-east", "failover_zone": "default"})
    assert r.status_code == 201 and r.json()["state"] == "up" and r.json()["failover_zone"] == "default"
    assert http.post("/api/v1/zones", json={"name": "z-west", "failover_zone": "z-east"}).status_code == 201

    cycle = http.put("/api/v1/zones/z-east", json={"failover_zone": "z-west"})
    assert cycle.status_code == 422
    assert cycle.json()["errors"] == [{"path": "failover_zone",
                                       "message": "failover cycle: z-east -> z-west -> z-east"}]
    for body, path in (({"name": "z-x", "failover_zone": "nowhere"}, "failover_zone"),
                       ({"name": "z-self", "failover_zone": "z-self"}, "failover_zone"),
                       ({"name": "Bad Name"}, "name"), ({"name": "z-s", "state": "sleeping"}, "state")):
        r = http.post("/api/v1/zones", json=body)
        assert r.status_code == 422 and [e["path"] for e in r.json()["errors"]] == [path], r.json()
    assert http.post("/api/v1/zones", json={"name": "z-east"}).status_code == 409
    assert http.get("/api/v1/zones/nowhere").status_code == 404

    listed = http.get("/api/v1/zones").json()
    assert listed["default_zone"] == "default" and listed["unzoned_servers"] == 0
    zones = {z["name"]: z for z in listed["zones"]}
    assert (zones["default"]["servers"], zones["default"]["status"]) == (1, "up")
    assert (zones["z-east"]["servers"], zones["z-east"]["status"]) == (0, "down")   # up, but no server

    r = http.post("/api/v1/zones/z-west/state", json={"state": "maintenance", "reason": "rack move"})
    assert r.status_code == 200 and (r.json()["state"], r.json()["reason"]) == ("maintenance", "rack move")
    assert http.get("/api/v1/zones/z-west").json()["status"] == "maintenance"


def test_a_job_of_a_zone_without_servers_runs_in_its_failover_and_completes(http):
    http.post("/api/v1/zones", json={"name": "z-empty", "failover_zone": "default"})
    bad = _campaign(http, "zone-bad", 1, zone="z-unknown")
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "zone"
    assert _campaign(http, "zone-failover", 10, zone="z-empty").status_code == 201
    job = http.post("/api/v1/jobs", json={"campaign": "zone-failover"}).json()
    assert job["zone"] == "z-empty"
    done = _until(http, job["id"], lambda j: j["state"] == "completed")
    assert done["placed_zone"] == "default" and done["work_items"] == {"done": 10}

    used = http.delete("/api/v1/zones/z-empty")
    assert used.status_code == 409 and "campaign zone-failover" in used.json()["message"]
    assert http.delete("/api/v1/zones/default").status_code == 409


def test_a_job_with_no_zone_available_waits_visibly_until_stopped(http):
    http.post("/api/v1/zones", json={"name": "z-lonely"})
    assert _campaign(http, "zone-waits", 5).status_code == 201
    r = http.post("/api/v1/jobs", json={"campaign": "zone-waits", "zone": "nowhere"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "zone"
    job = http.post("/api/v1/jobs", json={"campaign": "zone-waits", "zone": "z-lonely"}).json()
    assert job["zone"] == "z-lonely"
    time.sleep(2)                                    # several director ticks
    job = http.get(f"/api/v1/jobs/{job['id']}").json()
    assert (job["state"], job["placed_zone"], job["work_items"]) == ("running", None, {"ready": 5})
    assert _zones(http)["z-lonely"]["jobs"] == {"placed": 0, "waiting": 1}
    assert http.delete("/api/v1/zones/z-lonely").status_code == 409          # a job not ended
    http.post(f"/api/v1/jobs/{job['id']}/stop")
    _until(http, job["id"], lambda j: j["state"] == "stopped")
    assert http.delete("/api/v1/zones/z-lonely").status_code == 204
    assert http.get("/api/v1/zones/z-lonely").status_code == 404


def test_the_cli_drives_zones_through_the_client(pom, admin_token, capsys):
    with served_gateway(pom.settings) as address:
        cli = ["--url", f"http://{address}", "--token", admin_token, "--json", "zones"]
        assert main([*cli, "create", "z-cli", "--failover", "default", "--reason", "new rack"]) == 0
        assert json.loads(capsys.readouterr().out)["failover_zone"] == "default"
        assert main([*cli, "create", "z-cli2", "--failover", "z-cli"]) == 0
        capsys.readouterr()
        assert main([*cli, "set-failover", "z-cli", "z-cli2"]) == 1           # a cycle: refused
        assert "failover cycle: z-cli -> z-cli2 -> z-cli" in capsys.readouterr().err
        assert main([*cli, "set-state", "z-cli", "maintenance", "--reason", "move"]) == 0
        assert json.loads(capsys.readouterr().out)["state"] == "maintenance"
        assert main([*cli, "list"]) == 0
        listed = {z["name"]: z for z in json.loads(capsys.readouterr().out)["zones"]}
        assert (listed["z-cli"]["state"], listed["z-cli"]["servers"]) == ("maintenance", 0)
        assert main([*cli, "delete", "z-cli"]) == 1                           # z-cli2 fails over to it
        assert "zone z-cli2" in capsys.readouterr().err
        assert main([*cli, "set-failover", "z-cli2"]) == 0                     # none
        assert json.loads(capsys.readouterr().out)["failover_zone"] is None
        assert main([*cli, "delete", "z-cli"]) == 0 and "zone z-cli deleted" in capsys.readouterr().err
        assert main([*cli, "show", "z-cli"]) == 1

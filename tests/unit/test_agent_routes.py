"""The agents' REST routes over an in-process Agent Manager: create, list, read, supervisor
commands (force logoff, move), a job's agent limits, licenses; refusals as the API's errors."""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import auth, errors
from api.agent_client import agent_manager
from api.routers import agents
from pom_actors.core.agents.attachment import JobSpec
from pom_actors.core.agents.licenses import LicensePools
from tests.unit.test_agent_manager_service import Floor


class LocalManager:
    """`agent_client.AgentManagerClient` reaching the service in-process (the actor's methods)."""

    def __init__(self, floor: Floor):
        self.floor = floor

    def call(self, method, *args, **kw):
        s = self.floor.svc
        table = {"agents": s.list_agents, "add_agent": s.add_agent, "agent": s.view,
                 "agent_by_login": lambda login: s.view(s.agent_id(login)), "supervise": s.supervise,
                 "licenses": s.licenses, "jobs": s.targets, "set_job": s.set_job,
                 "update_agent": s.update_agent, "delete_agent": s.delete_agent}
        return table[method](*args, **kw)


@pytest.fixture
def api():
    floor = Floor(0, pools=LicensePools(predictive=3))
    app = FastAPI()
    errors.install(app)
    app.include_router(agents.router, prefix="/api/v1", dependencies=[auth.allow(auth.STAFF, auth.OPERATE)])
    app.include_router(agents.own, prefix="/api/v1", dependencies=[auth.allow(auth.STAFF | auth.AGENTS)])
    app.state.token_cache = auth.TokenCache()
    app.dependency_overrides[agent_manager] = lambda: LocalManager(floor)
    with TestClient(app, headers=auth.for_tests(app, "admin")) as client:
        yield floor, client


def test_agents_are_created_listed_and_commanded(api):
    floor, http = api
    r = http.post("/api/v1/agents", json={"login": "ann", "name": "Ann", "skills": ["sales", "es"]})
    assert r.status_code == 201 and r.json()["login"] == "ann" and r.json()["skills"] == ["es", "sales"]
    http.post("/api/v1/agents", json={"login": "bob", "skills": ["sales"]})
    floor.svc.set_jobs([JobSpec(1, skills=frozenset({"sales"})), JobSpec(2, priority=9)])
    floor.staff(*floor.svc.agents)
    floor.svc.tick()
    listed = http.get("/api/v1/agents").json()
    assert {a["login"]: a["state"] for a in listed} == {"ann": "ready", "bob": "ready"}
    assert all(a["job_id"] in (1, 2) for a in listed)
    assert http.get("/api/v1/agents", params={"state": "ready", "job_id": 1}).status_code == 200
    moved = http.post("/api/v1/agents/ann/move", json={"job_id": 2}).json()
    assert moved["job_id"] == 2 and moved["pinned"]
    off = http.post("/api/v1/agents/bob/force-logoff", json={"reason": "end of shift"}).json()
    assert off["state"] == "logged_out"
    assert http.post("/api/v1/agents/ann/force-logoff").json()["state"] == "logged_out"
    assert http.get("/api/v1/agents/ann").json()["state"] == "logged_out"


def test_agents_come_in_pages_by_id_filtered_by_state_skill_and_job(api):
    floor, http = api
    for n in range(5):
        http.post("/api/v1/agents", json={"login": f"a{n}", "skills": ["sales"] if n % 2 else ["es"]})
    r, seen = http.get("/api/v1/agents", params={"limit": 2}), []
    assert len(r.json()) == 2 and r.headers["link"].endswith('; rel="next"')
    while True:
        seen += [a["login"] for a in r.json()]
        if "link" not in r.headers:
            break
        r = http.get(r.headers["link"][1:].split(">")[0])
    assert seen == [f"a{n}" for n in range(5)]
    r = http.get("/api/v1/agents", params={"skill": "sales", "state": "logged_out", "limit": 1})
    assert [a["login"] for a in r.json()] == ["a1"] and "after=" in r.headers["link"]
    assert http.get(r.headers["link"][1:].split(">")[0]).json()[0]["login"] == "a3"
    for bad, at in (({"state": "asleep"}, "state"), ({"skill": "no spaces"}, "skill"), ({"limit": 1001}, "limit"),
                    ({"job_id": 0}, "job_id")):
        r = http.get("/api/v1/agents", params=bad)
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == f"query.{at}", r.text
    floor.svc.set_jobs([JobSpec(1)])
    floor.staff(*floor.svc.agents)
    floor.svc.tick()
    members = [a["id"] for a in floor.svc.list_agents(job_id=1)]
    r = http.get("/api/v1/jobs/1/agents", params={"limit": 2})
    assert len(members) == 3 and [a["id"] for a in r.json()["members"]] == members[:2] and "link" in r.headers
    assert [a["id"] for a in http.get(r.headers["link"][1:].split(">")[0]).json()["members"]] == members[2:]


def test_job_limits_and_licenses(api):
    floor, http = api
    floor.svc.set_jobs([JobSpec(1, priority=5), JobSpec(2, priority=10)])
    got = http.put("/api/v1/jobs/1/agents", json={"min": 1, "max": 4, "priority": 7}).json()
    assert (got["min_agents"], got["max_agents"], got["priority"]) == (1, 4, 7)
    got = http.put("/api/v1/jobs/1/agents", json={"max": None}).json()
    assert (got["min_agents"], got["max_agents"], got["priority"]) == (1, None, 7)
    detail = http.get("/api/v1/jobs/1/agents").json()
    assert detail["job_id"] == 1 and detail["members"] == [] and "granted" in detail
    lic = http.get("/api/v1/licenses").json()
    assert lic["pools"]["predictive"] == {"size": 3, "granted": 3, "free": 0}
    assert {j["job_id"]: j["granted"] for j in lic["jobs"]} == {1: 1, 2: 2}


def test_refusals_are_the_apis_errors(api):
    floor, http = api
    http.post("/api/v1/agents", json={"login": "ann", "skills": ["sales"]})
    floor.svc.set_jobs([JobSpec(1, skills=frozenset({"french"}))])
    assert http.get("/api/v1/agents/nobody").json()["error"] == "not_found"
    assert http.get("/api/v1/agents/nobody").status_code == 404
    r = http.post("/api/v1/agents/ann/move", json={"job_id": 1})
    assert r.status_code == 409 and r.json()["error"] == "conflict"          # not logged in
    floor.staff(*floor.svc.agents)
    r = http.post("/api/v1/agents/ann/move", json={"job_id": 1})
    assert r.status_code == 409 and "skills" in r.json()["message"]
    r = http.put("/api/v1/jobs/9/agents", json={"min": 1})
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    assert http.get("/api/v1/jobs/9/agents").status_code == 404
    r = http.put("/api/v1/jobs/1/agents", json={"min": 5, "max": 2})
    assert r.status_code == 409
    r = http.put("/api/v1/jobs/1/agents", json={"priority": 11, "min": -1})
    assert r.status_code == 422 and {e["path"] for e in r.json()["errors"]} == {"priority", "min"}
    r = http.post("/api/v1/agents", json={"login": "", "skills": ["no spaces"]})
    assert r.status_code == 422 and {e["path"] for e in r.json()["errors"]} == {"login", "skills.0"}
    floor.svc.logout(floor.svc.agent_id("ann"))
    r = http.post("/api/v1/agents/ann/force-logoff")
    assert r.status_code == 409 and r.json()["error"] == "illegal_transition" and r.json()["state"] == "logged_out"


def test_groups_update_and_delete(api):
    floor, http = api
    r = http.post("/api/v1/agents", json={"login": "ann", "skills": ["sales"], "groups": ["gold", "team.2"]})
    assert r.status_code == 201 and r.json()["groups"] == ["gold", "team.2"] and r.json()["name"] == ""
    http.post("/api/v1/agents", json={"login": "bob", "groups": ["silver"]})
    assert [a["login"] for a in http.get("/api/v1/agents", params={"group": "gold"}).json()] == ["ann"]
    floor.svc.set_jobs([JobSpec(1, groups=frozenset({"gold"})), JobSpec(2, priority=1, min_agents=2, groups=frozenset({"silver"}))])
    floor.staff(*floor.svc.agents)
    floor.svc.tick()
    assert http.get("/api/v1/agents/ann").json()["job_id"] == 1
    r = http.post("/api/v1/agents/bob/move", json={"job_id": 1})
    assert r.status_code == 409 and "groups" in r.json()["message"]
    # PATCH: the fields given change, the others stay; the next rebalance moves ann out of job 1
    changed = http.patch("/api/v1/agents/ann", json={"name": "Ann", "groups": ["silver"]}).json()
    assert (changed["name"], changed["skills"], changed["groups"]) == ("Ann", ["sales"], ["silver"])
    floor.svc.tick()
    assert http.get("/api/v1/agents/ann").json()["job_id"] == 2
    assert http.patch("/api/v1/agents/ann", json={}).json()["groups"] == ["silver"]       # nothing: unchanged
    for body, at in (({"groups": ["no spaces"]}, "groups.0"), ({"groups": [f"g{i}" for i in range(101)]}, "groups"),
                     ({"skills": None}, "skills"), ({"login": "x"}, "login"), ({"name": "n" * 201}, "name")):
        r = http.patch("/api/v1/agents/ann", json=body)
        assert r.status_code == 422 and [e["path"] for e in r.json()["errors"]] == [at], r.text
    r = http.post("/api/v1/agents", json={"login": "cy", "groups": ["a b"]})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "groups.0"
    r = http.get("/api/v1/agents", params={"group": "a b"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "query.group"
    assert http.patch("/api/v1/agents/nobody", json={"name": "x"}).status_code == 404
    # DELETE: 409 while logged in, 204 once logged out, then unknown
    r = http.delete("/api/v1/agents/ann")
    assert r.status_code == 409 and "log it off" in r.json()["message"]
    http.post("/api/v1/agents/ann/force-logoff")
    assert http.delete("/api/v1/agents/ann").status_code == 204
    for r in (http.get("/api/v1/agents/ann"), http.delete("/api/v1/agents/ann"),
              http.patch("/api/v1/agents/ann", json={"name": "x"})):
        assert r.status_code == 404
    assert [a["login"] for a in http.get("/api/v1/agents").json()] == ["bob"]


def test_an_agent_token_reads_only_its_own_agent(api):
    floor, http = api
    ann = http.post("/api/v1/agents", json={"login": "ann"}).json()["id"]
    http.post("/api/v1/agents", json={"login": "bob"})
    mine = auth.for_tests(http.app, "agent", agent_id=ann)
    assert http.get("/api/v1/agents/ann", headers=mine).json()["id"] == ann
    refused = http.get("/api/v1/agents/bob", headers=mine)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    for other in ("/api/v1/agents", "/api/v1/licenses"):            # the supervisors' routes stay theirs
        assert http.get(other, headers=mine).status_code == 403
    assert http.post("/api/v1/agents/ann/force-logoff", headers=mine).status_code == 403
    unbound = auth.for_tests(http.app, "agent")                     # an agent token naming no agent
    assert http.get("/api/v1/agents/ann", headers=unbound).status_code == 403
    boss = auth.for_tests(http.app, "supervisor")
    assert http.get("/api/v1/agents/bob", headers=boss).json()["login"] == "bob"

"""The jobs router without Ray or a database: the director and the job store are fakes.

Each command is its own route: the action comes from the path only, so a query parameter
cannot turn a pause into a start (the old routes took it from `?_event=`)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient

from api import auth, deps
from api.app import create_app
from api.errors import NoAnswer, Unavailable
from api.routers import jobs as jobs_router
from pom_actors.config import Settings
from pom_actors.core.lifecycle import IllegalTransition, JobEvent, JobState, StateChanged, transition
from pom_actors.store.catalog import NotFound

UNUSED_DB = "postgresql://unused@127.0.0.1:1/none"     # the pool is never opened here


class FakeDirector:
    def __init__(self, jobs: dict[int, dict]):
        self.jobs, self.commands, self.created = jobs, [], []
        self.fail: Exception | None = None

    def command(self, job_id: int, event: JobEvent) -> str:
        self.commands.append((job_id, str(event)))
        if self.fail:
            raise self.fail
        job = self.jobs[job_id]
        job["state"] = str(transition(JobState(job["state"]), JobEvent(event)))
        return job["state"]

    def create_job(self, campaign, start: bool, zone: str | None = None) -> int:
        self.created.append((campaign, start))
        return 1


def _job(job_id: int, state: str) -> dict:
    at = datetime(2026, 11, 25, 15, tzinfo=timezone.utc)
    return {"id": job_id, "campaign_id": 7, "campaign": "reminders", "state": state, "reason": "",
            "shards": 4, "managers": 1, "zone": "default", "placed_zone": None, "created_at": at,
            "started_at": None, "ended_at": None}


@pytest.fixture
def store(monkeypatch) -> dict[int, dict]:
    jobs = {1: _job(1, "queued"), 2: _job(2, "running")}

    def job(_conn, job_id):
        if job_id not in jobs:
            raise NotFound(f"job {job_id} does not exist")
        return jobs[job_id]

    monkeypatch.setattr(jobs_router.jobstore, "job", job)
    monkeypatch.setattr(jobs_router.jobstore, "jobs", lambda _c, states=None, after=0, limit=None, campaign_id=None: [
        j for j in sorted(jobs.values(), key=lambda j: j["id"])
        if (not states or j["state"] in states) and j["id"] > after][:limit])
    monkeypatch.setattr(jobs_router.jobstore, "state_counts", lambda _c, ids: {i: {"ready": 3} for i in ids})
    monkeypatch.setattr(jobs_router.jobstore, "attempt_codes", lambda _c, _id: {})
    monkeypatch.setattr(jobs_router.catalog, "campaign", lambda _c, ref: {"id": 7, "name": "reminders",
                                                                          "enabled": ref != "paused-campaign"})
    return jobs


@pytest.fixture
def director(store) -> FakeDirector:
    return FakeDirector(store)


@pytest.fixture
def http(director) -> TestClient:
    app = create_app(Settings(database_url=UNUSED_DB, demo=False))
    app.dependency_overrides[deps.db] = lambda: object()
    app.dependency_overrides[deps.director] = lambda: director
    return TestClient(app, headers=auth.for_tests(app))


def test_a_query_parameter_does_not_choose_the_action(http, director, store):
    r = http.post("/api/v1/jobs/1/pause", params={"_event": "start"})
    assert r.status_code == 409 and r.json()["error"] == "illegal_transition"
    assert r.json()["event"] == "pause"
    assert director.commands == [(1, "pause")]
    assert store[1]["state"] == "queued"                       # nothing started


@pytest.mark.parametrize("action, state, after", [
    ("start", "queued", "running"), ("pause", "running", "pausing"),
    ("resume", "paused", "resuming"), ("stop", "running", "stopping")])
def test_each_action_is_its_own_route(http, director, store, action, state, after):
    store[1]["state"] = state
    r = http.post(f"/api/v1/jobs/1/{action}", params={"_event": "stop" if action != "stop" else "pause"})
    assert r.status_code == 200, r.text
    assert director.commands == [(1, action)]
    assert r.json()["state"] == after and r.json()["attempts_by_code"] == {}


def test_an_unknown_action_is_404_and_never_reaches_the_director(http, director):
    for action in ("finish", "fail", "drained", "bogus"):
        assert http.post(f"/api/v1/jobs/1/{action}").status_code == 404
    assert director.commands == []


def test_a_missing_job_is_404_before_the_director_is_asked(http, director):
    r = http.post("/api/v1/jobs/99/start")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"type": "urn:pom:problem:not_found", "title": "Not found", "status": 404,
                        "detail": "job 99 does not exist", "error": "not_found",
                        "message": "job 99 does not exist"}
    assert director.commands == []


def test_the_directors_refusals_keep_their_bodies(http, director):
    director.fail = IllegalTransition(JobState.QUEUED, JobEvent.PAUSE)
    assert http.post("/api/v1/jobs/1/pause").json() == {
        "type": "urn:pom:problem:illegal_transition", "title": "Not allowed in this state", "status": 409,
        "detail": "job in state queued cannot take event pause",
        "error": "illegal_transition", "state": "queued", "event": "pause", "allowed": ["start", "stop"],
        "message": "job in state queued cannot take event pause"}
    director.fail = StateChanged("job 1 changed state concurrently; try again")
    r = http.post("/api/v1/jobs/1/start")
    assert r.status_code == 409
    assert {k: r.json()[k] for k in ("type", "status", "detail", "error")} == {
        "type": "urn:pom:problem:conflict", "status": 409, "error": "conflict",
        "detail": "job 1 changed state concurrently; try again"}


def test_a_director_that_is_gone_or_silent_is_503_or_504(http, director):
    director.fail = Unavailable("the campaign director is not running")
    r = http.post("/api/v1/jobs/1/start")
    assert r.status_code == 503 and r.json()["error"] == "unavailable"
    director.fail = NoAnswer("the campaign director did not answer within 60 s")
    r = http.post("/api/v1/jobs/1/start")
    assert r.status_code == 504 and r.json()["error"] == "timeout"


def test_create_and_read(http, director):
    r = http.post("/api/v1/jobs", json={"campaign": "reminders", "start": False})
    assert r.status_code == 201 and director.created == [("reminders", False)]
    assert r.json()["created_at"] == "2026-11-25T15:00:00Z" and r.json()["total"] == 3
    listed = http.get("/api/v1/jobs", params={"state": "running"}).json()
    assert [j["id"] for j in listed] == [2] and "attempts_by_code" not in listed[0]
    assert listed[0]["actions"] == ["pause", "stop"]


def test_no_job_route_is_async():
    """Routes that touch the database run in the threadpool, never on the event loop."""
    import inspect

    from api.routers import campaigns, demo, health, lists, strategies

    for module in (jobs_router, campaigns, demo, health, lists, strategies):
        for route in module.router.routes:
            assert not inspect.iscoroutinefunction(route.endpoint), route.path


def test_a_disabled_campaign_takes_no_new_job(http, director):
    r = http.post("/api/v1/jobs", json={"campaign": "paused-campaign"})
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    assert "disabled" in r.json()["detail"] and director.created == []


def test_the_job_list_comes_in_pages_with_a_next_link(http, store):
    store.update({i: _job(i, "stopped") for i in range(3, 8)})
    r = http.get("/api/v1/jobs", params={"limit": 3, "state": "stopped"})
    assert [j["id"] for j in r.json()] == [3, 4, 5]
    assert r.headers["link"] == '<http://testserver/api/v1/jobs?state=stopped&after=5&limit=3>; rel="next"'
    r = http.get(r.headers["link"][1:].split(">")[0])
    assert [j["id"] for j in r.json()] == [6, 7] and "link" not in r.headers
    for bad in ({"limit": 0}, {"limit": 1001}, {"after": -1}, {"after": 2**63}):
        r = http.get("/api/v1/jobs", params=bad)
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == f"query.{next(iter(bad))}"

"""GET /api/v1/jobs/{id}/pacing without Ray or a database: the job store and the managers'
status probe are fakes."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api import auth, deps
from api.app import create_app
from api.routers import pacing as pacing_router
from api.routers.metrics import manager_probe
from pom_actors.config import Settings
from pom_actors.store.catalog import NotFound

FIGURES = {"mode": "progressive", "applied": "progressive", "dials": 2, "in_flight": 1, "lines": 3, "agents": 2,
           "ready": 1, "granted": 9, "window_s": 2592000.0, "live_answered": 40, "abandoned": 0,
           "machine_detected": 5, "abandon_rate": 0.0, "reason": "1 ready x 1 - 1 in flight", "alarm": None}


@pytest.fixture
def http(monkeypatch):
    jobs = {1: {"id": 1, "state": "running", "managers": 2}, 2: {"id": 2, "state": "completed", "managers": 2}}

    def job(_conn, job_id):
        if job_id not in jobs:
            raise NotFound(f"job {job_id} does not exist")
        return jobs[job_id]

    asked = []

    def probe(names, deadline):
        asked.append(list(names))
        return lambda: {"pom-manager-1-0": {"holder": "h0", "pacing": {"call": FIGURES}},
                        "pom-manager-1-1": {"holder": "h1", "pacing": {"call": {**FIGURES, "live_answered": 41,
                                                                                "abandon_rate": 0.01,
                                                                                "reason": "other"}}}}
    monkeypatch.setattr(pacing_router.jobstore, "job", job)
    app = create_app(Settings(database_url="postgresql://unused@127.0.0.1:1/none", demo=False))
    app.dependency_overrides[deps.db] = lambda: object()
    app.dependency_overrides[manager_probe] = lambda: probe
    client = TestClient(app, headers=auth.for_tests(app))
    client.asked = asked
    return client


def test_a_jobs_pacing_sums_its_managers_and_lists_each(http):
    r = http.get("/api/v1/jobs/1/pacing")
    assert r.status_code == 200, r.text
    body = r.json()
    assert http.asked == [["pom-manager-1-0", "pom-manager-1-1"]]
    call = body["handlers"]["call"]
    assert call["applied"] == "progressive" and call["dials"] == 4 and call["lines"] == 6 and call["agents"] == 4
    assert call["lines_per_agent"] == 1.5
    assert call["live_answered"] == 41 and call["abandon_rate"] == 0.01          # the newest read of the window
    assert call["reasons"] == {"pom-manager-1-0": "1 ready x 1 - 1 in flight", "pom-manager-1-1": "other"}
    assert [m["state"] for m in body["managers"]] == ["up", "up"]


def test_an_ended_job_has_no_figures_and_a_missing_one_is_404(http):
    assert http.get("/api/v1/jobs/2/pacing").json() == {"job_id": 2, "state": "completed", "handlers": {},
                                                        "managers": []}
    r = http.get("/api/v1/jobs/99/pacing")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert http.get("/api/v1/jobs/0/pacing").status_code == 422

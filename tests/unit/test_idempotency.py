"""Idempotency keys: the decisions (core/idempotency.py) and the middleware (api/idempotency.py)
over the jobs routes, with an in-memory key store and a fake director."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from api import auth, deps
from api.app import create_app
from api.routers import jobs as jobs_router
from pom_actors.config import Settings
from pom_actors.core.idempotency import Stored, Verdict, decide, fingerprint, key_fault

from .test_api_jobs import FakeDirector, _job

NOW = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
LATER = NOW + timedelta(hours=1)


def test_the_decisions():
    assert decide(None, "a", NOW) == Verdict.RUN
    assert decide(Stored("a", 201, LATER), "a", NOW) == Verdict.REPLAY
    assert decide(Stored("a", None, LATER), "a", NOW) == Verdict.IN_PROGRESS
    assert decide(Stored("a", 201, LATER), "b", NOW) == Verdict.MISMATCH
    assert decide(Stored("a", 201, NOW), "b", NOW) == Verdict.RUN          # expired: forgotten


def test_keys_and_fingerprints():
    assert key_fault("job-7f3a") is None and key_fault("x" * 200) is None
    for bad in ("", "x" * 201, "a b", "é", "tab\t"):
        assert key_fault(bad) is not None
    base = fingerprint("POST", "/api/v1/jobs", b"", "caller", "body")
    assert base == fingerprint("POST", "/api/v1/jobs", b"", "caller", "body")
    assert len({base, fingerprint("POST", "/api/v1/jobs", b"x=1", "caller", "body"),
                fingerprint("POST", "/api/v1/jobs", b"", "other", "body"),
                fingerprint("POST", "/api/v1/jobs", b"", "caller", "other")}) == 4


class MemoryKeys:
    """The key store's contract in memory (store/idempotency.py in SQL)."""

    def __init__(self):
        self.rows: dict[tuple[str, str], dict] = {}
        self.now = NOW

    def claim(self, scope, key, print_):
        row = self.rows.get((scope, key))
        stored = Stored(row["fingerprint"], row["status"], row["expires_at"]) if row else None
        verdict = decide(stored, print_, self.now)
        if verdict == Verdict.RUN:
            self.rows[(scope, key)] = {"fingerprint": print_, "status": None, "answer": None,
                                       "expires_at": self.now + timedelta(days=1)}
            return verdict, None, None
        return verdict, row["status"], row["answer"]

    def complete(self, scope, key, status, answer):
        self.rows[(scope, key)].update(status=status, answer=answer)

    def release(self, scope, key):
        self.rows.pop((scope, key), None)


@pytest.fixture
def setup(monkeypatch):
    jobs = {1: _job(1, "queued")}
    monkeypatch.setattr(jobs_router.jobstore, "job", lambda _c, job_id: jobs[job_id])
    monkeypatch.setattr(jobs_router.jobstore, "state_counts", lambda _c, ids: {i: {} for i in ids})
    monkeypatch.setattr(jobs_router.jobstore, "attempt_codes", lambda _c, _id: {})
    monkeypatch.setattr(jobs_router.catalog, "campaign", lambda _c, ref: {"id": 7, "enabled": True})
    director = FakeDirector(jobs)
    app = create_app(Settings(database_url="postgresql://unused@127.0.0.1:1/none", demo=False))
    app.dependency_overrides[deps.db] = lambda: object()
    app.dependency_overrides[deps.director] = lambda: director
    keys = app.state.idempotency = MemoryKeys()
    return TestClient(app, headers=auth.for_tests(app)), director, keys


def test_the_same_key_and_body_get_the_first_answer_without_a_second_job(setup):
    http, director, keys = setup
    body = {"campaign": "reminders", "start": False}
    first = http.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "k1"})
    again = http.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert director.created == [("reminders", False)]
    other = http.post("/api/v1/jobs", json={**body, "start": True}, headers={"Idempotency-Key": "k1"})
    assert other.status_code == 422 and other.json()["errors"][0]["path"] == "header.Idempotency-Key"
    assert director.created == [("reminders", False)]
    http.post("/api/v1/jobs", json=body)                          # no key: runs every time
    assert len(director.created) == 2


def test_a_failed_request_releases_its_key_and_a_retry_runs(setup):
    http, director, keys = setup
    director.fail = RuntimeError("boom")
    r = TestClient(http.app, headers=http.headers, raise_server_exceptions=False).post(
        "/api/v1/jobs/1/start", headers={"Idempotency-Key": "k2"})
    assert r.status_code == 500 and keys.rows == {}
    director.fail = None
    r = http.post("/api/v1/jobs/1/start", headers={"Idempotency-Key": "k2"})
    assert r.status_code == 200 and r.json()["state"] == "running"
    assert http.post("/api/v1/jobs/1/start", headers={"Idempotency-Key": "k2"}).json()["state"] == "running"
    assert director.commands == [(1, "start"), (1, "start")]      # the failed one, then one that ran
    assert http.post("/api/v1/jobs/1/start", headers={"Idempotency-Key": "k3"}).status_code == 409


def test_in_progress_expired_and_bad_keys(setup):
    http, director, keys = setup
    body = {"campaign": "reminders", "start": False}
    http.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "k4"})
    keys.rows[("POST /api/v1/jobs", "k4")]["status"] = None          # as if the first were still running
    r = http.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "k4"})
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    keys.now = NOW + timedelta(days=2)                                  # expired: runs again
    assert http.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "k4"}).status_code == 201
    assert len(director.created) == 2
    r = http.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": "a b"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "header.Idempotency-Key"
    assert len(director.created) == 2


def test_routes_without_keys_are_untouched(setup):
    http, director, keys = setup
    http.post("/api/v1/jobs/1/pause", headers={"Idempotency-Key": "k5"})
    assert keys.rows == {}


def test_the_body_digest_ignores_the_multipart_boundary_even_across_blocks(monkeypatch):
    import io

    from api import idempotency

    monkeypatch.setattr(idempotency, "SPOOL_BYTES", 7)
    part = b"\r\nContent-Disposition: form-data; name=file\r\n\r\na,b\r\n1,2\r\n"
    one = b"--AAAAAAAAAAAA" + part + b"--AAAAAAAAAAAA--\r\n"
    two = b"--BBBBBBBBBBBBBBBB" + part + b"--BBBBBBBBBBBBBBBB--\r\n"
    digest = idempotency.body_digest
    assert digest(io.BytesIO(one), b"AAAAAAAAAAAA") == digest(io.BytesIO(two), b"BBBBBBBBBBBBBBBB")
    assert digest(io.BytesIO(one.replace(b"1,2", b"1,3")), b"AAAAAAAAAAAA") != digest(io.BytesIO(one), b"AAAAAAAAAAAA")
    assert digest(io.BytesIO(b'{"a": 1}'), b"") != digest(io.BytesIO(b'{"a": 2}'), b"")

"""Hostile input refused at the gateway before it reaches the database: text without NUL or
unpaired surrogates, integers in range, finite numbers, strategies that are objects, bodies
under the size limit. No Ray, no database: requests that fail validation never use them."""
from __future__ import annotations

import json
import math

import pytest
from fastapi.testclient import TestClient

from api import auth, deps
from api.app import create_app
from api.routers.lists import _parse
from api.validation import BIGINT_MAX, INT4_MAX, json_fault, printable, text_fault
from pom_actors.config import Settings

UNUSED_DB = "postgresql://unused@127.0.0.1:1/none"
BIG = 2**70


class Untouchable:
    """A connection or director that fails the test if a route gets as far as using it."""

    def __getattr__(self, name):
        raise AssertionError(f"validation should have refused the request before .{name}")


def _client(**options) -> TestClient:
    app = create_app(Settings(database_url=UNUSED_DB, demo=True, **options))
    app.dependency_overrides[deps.db] = Untouchable
    app.dependency_overrides[deps.director] = Untouchable
    return TestClient(app, headers=auth.for_tests(app))


@pytest.fixture(scope="module")
def http() -> TestClient:
    return _client()


def send(http, method, url, body, **kwargs):
    return http.request(method, url, content=json.dumps(body), headers={"content-type": "application/json"},
                        **kwargs)


def faults(r) -> list[tuple[str, str]]:
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json()["error"] == "invalid"
    return [(e["path"], e["message"]) for e in r.json()["errors"]]


# -- the walker ---------------------------------------------------------------------------------
def test_text_faults():
    assert text_fault("plain, ünïcode, 🙂") is None
    assert "NUL" in text_fault("a\x00b")
    assert "\\ud800" in text_fault("a\ud800")
    assert "\\udfff" in text_fault("\udfff")
    assert printable("a\x00\ud83d") == "a\\u0000\\ud83d"


def test_json_fault_finds_the_first_bad_value_in_document_order():
    doc = {"a": [1, "ok", {"b": "x\x00"}], "c": "\ud800"}
    assert json_fault(doc) == (("a", 2, "b"), "must not contain a NUL character (\\u0000)")
    assert json_fault({"n": BIGINT_MAX, "m": -BIGINT_MAX - 1, "f": 1.5, "t": True, "z": None}) is None
    assert json_fault({"n": [BIGINT_MAX + 1]})[0] == ("n", 0)
    assert json_fault({"f": math.inf})[0] == ("f", )
    assert json_fault({"f": math.nan})[0] == ("f", )
    path, message = json_fault({"ok": 1, "bad\x00key": 1})
    assert path == ("bad\\u0000key",) and message.startswith("key must not")


def test_json_fault_walks_any_depth_without_recursion():
    deep: object = "\x00"
    for _ in range(100_000):
        deep = [deep]
    path, _ = json_fault({"x": deep})
    assert len(path) == 100_001


# -- request models -----------------------------------------------------------------------------
@pytest.mark.parametrize("body, path", [
    ({"name": "a\x00b"}, "name"),
    ({"name": "ok", "description": "\ud800"}, "description"),
    ({"name": "ok", "attributes": ["fine", "\udc00"]}, "attributes.1"),
])
def test_list_text_fields(http, body, path):
    assert [p for p, _ in faults(send(http, "POST", "/api/v1/lists", body))] == [path]


@pytest.mark.parametrize("change, path", [
    ({"name": "\x00"}, "name"),
    ({"description": "\ud83d"}, "description"),
    ({"strategy_id": INT4_MAX + 1}, "strategy_id"),
    ({"list_id": 0}, "list_id"),
    ({"list_id": BIG}, "list_id"),
    ({"finish": {"goal_count": 1, "goal_codes": ["a", "b\x00"]}}, "finish.goal_codes.1"),
    ({"finish": {"max_processed": BIG}}, "finish.max_processed"),
    ({"finish": {"\ud800": 1}}, "finish.\\ud800"),
    ({"schedule": {"cron": "0 9 * * *", "timezone": "UTC\x00"}}, "schedule.timezone"),
    ({"schedule": {"cron": "0 9 * * *\ud800"}}, "schedule.cron"),
])
def test_campaign_fields(http, change, path):
    body = {"name": "c", "strategy_id": 1, "list_id": 1, **change}
    assert [p for p, _ in faults(send(http, "POST", "/api/v1/campaigns", body))] == [path]


@pytest.mark.parametrize("campaign", ["a\x00", "\ud800", BIG, 0, -1])
def test_job_campaign_ref(http, campaign):
    assert [p for p, _ in faults(send(http, "POST", "/api/v1/jobs", {"campaign": campaign}))] == ["campaign"]


@pytest.mark.parametrize("method, url, path", [
    ("GET", f"/api/v1/jobs/{BIG}", "path.job_id"),
    ("GET", f"/api/v1/jobs/{INT4_MAX + 1}", "path.job_id"),
    ("GET", "/api/v1/jobs/0", "path.job_id"),
    ("POST", f"/api/v1/jobs/{BIG}/start", "path.job_id"),
    ("POST", f"/api/v1/jobs/{BIG}/stop", "path.job_id"),
    ("POST", f"/api/v1/lists/{BIG}/contacts", "path.list_id"),
    ("GET", "/api/v1/jobs?state=a%00b", "query.state"),
    ("POST", f"/api/v1/strategies?list_id={BIG}", "query.list_id"),
])
def test_path_and_query_parameters(http, method, url, path):
    body = [] if "contacts" in url else ({"name": "s"} if "strategies" in url else None)
    r = http.request(method, url, content=None if body is None else json.dumps(body),
                     headers={"content-type": "application/json"})
    assert path in [p for p, _ in faults(r)]


@pytest.mark.parametrize("raw", ["null", "[]", "1", "true", '"name: x"', ""])
def test_a_strategy_must_be_an_object(http, raw):
    r = http.post("/api/v1/strategies", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid"


@pytest.mark.parametrize("raw, path", [
    ('{"name": "s", "handlers": {"c": {"message": "hi\\u0000"}}}', "handlers.c.message"),
    ('{"name": "s", "handlers": {"c": {"message": "\\ud800"}}}', "handlers.c.message"),
    ('{"name": "s", "handlers": {"c": {"pacing": {"max_concurrent": NaN}}}}', "handlers.c.pacing.max_concurrent"),
    ('{"name": "s", "handlers": {"c": {"pacing": {"max_concurrent": 1e999}}}}', "handlers.c.pacing.max_concurrent"),
    ('{"name": "s", "handlers": {"c": {"pacing": {"max_concurrent": 99999999999999999999}}}}',
     "handlers.c.pacing.max_concurrent"),
    ('{"name": "s", "handlers": {"body": {"message": "\\u0000"}}}', "handlers.body.message"),
])
def test_strategy_documents_name_the_path_of_a_bad_value(http, raw, path):
    r = http.post("/api/v1/strategies", content=raw, headers={"content-type": "application/json"})
    assert [p for p, _ in faults(r)] == [path]


def test_error_bodies_never_echo_a_surrogate_raw(http):
    r = send(http, "POST", "/api/v1/campaigns", {"name": "c", "strategy_id": 1, "list_id": 1,
                                                 "finish": {"\udead": 1}})
    r.content.decode("utf-8")                        # encodable: no lone surrogate in the body
    assert faults(r)[0][0] == "finish.\\udead"


def test_the_demo_sink_refuses_bad_text(http):
    assert [p for p, _ in faults(send(http, "POST", "/demo/sms", {"to": "+1", "text": ["\x00"]}))] == ["text.0"]
    assert http.get("/demo/sms").json()["received"] == 0


# -- contact rows: refused by line, the others kept -------------------------------------------------
def test_contact_rows_with_bad_values_are_refused_by_line_and_keep_the_others():
    rows = [{"external_id": "a", "phone1": "+12125550100"},
            {"external_id": "b", "phone1": "+12125550101", "first_name": "B\x00"},
            {"external_id": "c", "phone1": "+12125550102", "attributes": {"n": BIG}},
            {"external_id": "b", "phone1": "+12125550103"},         # b's first row was refused
            {"external_id": "e", "phone1": "12"},
            {"external_id": "f", "email": "f@example.com", "attributes": {"\ud800": 1}}]
    good, errors = _parse(rows)
    assert [(c["line"], c["external_id"]) for c in good] == [(1, "a"), (4, "b")]
    assert [(e["line"], e["field"]) for e in errors] == [
        (2, "first_name"), (3, "attributes.n"), (5, "phone1"), (6, "attributes.\\ud800")]


# -- the body limit ------------------------------------------------------------------------------
def test_a_body_over_the_limit_is_413_problem_with_or_without_a_length():
    http = _client(max_body_bytes=1000)
    small = {"to": "+12125550100", "text": "x" * 100}
    assert http.post("/demo/sms", json=small).status_code == 200
    r = http.post("/demo/sms", json={"to": "+1", "text": "x" * 2000})
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"type": "urn:pom:problem:too_large", "title": "Request body too large", "status": 413,
                        "detail": "request body larger than 1000 bytes", "error": "too_large",
                        "message": "request body larger than 1000 bytes"}

    def chunks():                                       # no Content-Length: counted as it comes
        yield b'{"to": "+1", "text": "'
        for _ in range(50):
            yield b"x" * 100
        yield b'"}'

    r = http.post("/demo/sms", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    assert http.get("/demo/sms").json()["received"] == 1       # only the small one got in


def test_the_default_limit_is_ten_mib():
    http = _client()
    body = b'{"to": "+1", "text": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    assert http.post("/demo/sms", content=body, headers={"content-type": "application/json"}).status_code == 413
    assert http.post("/demo/sms", json={"to": "+1", "text": "x" * 1_000_000}).status_code == 200

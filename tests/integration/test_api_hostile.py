"""Hostile input against the real gateway and database: never a 500, always the field at fault.

Before the gateway bounded its integers, refused NUL characters, unpaired surrogates and
non-finite numbers in text and JSON, and required a strategy to be a JSON object, most of
these cases got a 500 (psycopg's DataError, NumericValueOutOfRange or UnicodeEncodeError,
an AttributeError in the strategy parser); ids beyond the `integer` range got a 404, numbers
beyond `bigint` in a strategy or finish criteria were stored, and a 20 MB body was read whole. Bodies are sent as raw JSON text, since a
lone surrogate can only travel as a `\\udxxx` escape.
"""
from __future__ import annotations

import json

import pytest


from .conftest import phone_contacts

BIG = 2**70
INT4_OVER = 2**31


def send(http, method: str, url: str, body=None, **kwargs):
    content = None if body is None else json.dumps(body)   # ensure_ascii: "\ud800" stays an escape
    return http.request(method, url, content=content, headers={"content-type": "application/json"},
                        **kwargs)


@pytest.fixture(scope="module")
def refs(http) -> dict:
    lst = http.post("/api/v1/lists", json={"name": "hostile-list", "attributes": ["segment"]}).json()
    strategy = http.post("/api/v1/strategies", json={"name": "hostile", "initial": "c", "handlers": {
        "c": {"type": "call", "message": "x", "results": {"default": "done"}}}}).json()
    return {"list": lst["id"], "strategy": strategy["id"]}


def invalid_paths(r) -> set[str]:
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json()["error"] == "invalid", r.text
    return {e["path"] for e in r.json()["errors"]}


@pytest.mark.parametrize("body, path", [
    ({"name": "nul\u0000name"}, "name"),
    ({"name": "ok-surrogate", "description": "half \ud800 a pair"}, "description"),
    ({"name": "ok-attr", "attributes": ["segment", "x\u0000"]}, "attributes.1"),
])
def test_text_with_nul_or_lone_surrogate_is_422_naming_the_field(http, body, path):
    assert invalid_paths(send(http, "POST", "/api/v1/lists", body)) == {path}


@pytest.mark.parametrize("change, path", [
    ({"name": "camp\u0000"}, "name"),
    ({"description": "\udc00"}, "description"),
    ({"strategy_id": INT4_OVER}, "strategy_id"),
    ({"list_id": BIG}, "list_id"),
    ({"priority": BIG}, "priority"),
    ({"finish": {"goal_count": 1, "goal_codes": ["ok", "bad\u0000"]}}, "finish.goal_codes.1"),
    ({"finish": {"max_processed": BIG}}, "finish.max_processed"),
    ({"finish": {"\ud800": 1}}, "finish.\\ud800"),
    ({"schedule": {"cron": "0 9 * * *", "timezone": "UTC\u0000"}}, "schedule.timezone"),
])
def test_campaign_fields_out_of_range_or_with_bad_text_are_422(http, refs, change, path):
    body = {"name": "hostile-camp", "strategy_id": refs["strategy"], "list_id": refs["list"], **change}
    assert invalid_paths(send(http, "POST", "/api/v1/campaigns", body)) == {path}
    assert "hostile-camp" not in {c["name"] for c in http.get("/api/v1/campaigns").json()}


@pytest.mark.parametrize("body, path", [
    ({"campaign": "name\u0000"}, "campaign"),
    ({"campaign": "\ud83d"}, "campaign"),
    ({"campaign": BIG}, "campaign"),
])
def test_job_creation_refuses_bad_campaign_refs(http, body, path):
    assert invalid_paths(send(http, "POST", "/api/v1/jobs", body)) == {path}


@pytest.mark.parametrize("method, url, path", [
    ("GET", f"/api/v1/jobs/{BIG}", "path.job_id"),
    ("GET", f"/api/v1/jobs/{INT4_OVER}", "path.job_id"),
    ("POST", f"/api/v1/jobs/{BIG}/pause", "path.job_id"),
    ("POST", f"/api/v1/lists/{BIG}/contacts", "path.list_id"),
    ("GET", "/api/v1/jobs?state=run%00ning", "query.state"),
])
def test_path_and_query_parameters_out_of_range_are_422(http, method, url, path):
    body = [] if url.endswith("/contacts") else None
    assert invalid_paths(send(http, method, url, body)) == {path}


def test_strategy_list_id_out_of_range_is_422(http):
    good = {"name": "s", "initial": "c", "handlers": {"c": {"type": "call", "message": "x",
                                                            "results": {"default": "done"}}}}
    r = send(http, "POST", "/api/v1/strategies", good, params={"list_id": BIG})
    assert invalid_paths(r) == {"query.list_id"}


@pytest.mark.parametrize("raw", ["null", "[]", "1", '"text"', "true"])
def test_a_strategy_that_is_not_an_object_is_422(http, raw):
    r = http.post("/api/v1/strategies", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid"


@pytest.mark.parametrize("message, path", [
    ("Hi\u0000", "handlers.c.message"),
    ("Hi \udfff", "handlers.c.message"),
])
def test_strategy_text_with_nul_or_surrogate_is_422_with_its_path(http, message, path):
    doc = {"name": "bad-text", "initial": "c", "handlers": {"c": {"type": "call", "message": message,
                                                                  "results": {"default": "done"}}}}
    assert invalid_paths(send(http, "POST", "/api/v1/strategies", doc)) == {path}


def test_strategy_numbers_beyond_bigint_or_not_finite_are_422(http):
    doc = {"name": "big", "initial": "c", "handlers": {"c": {"type": "call", "message": "x",
                                                             "pacing": {"max_concurrent": BIG},
                                                             "results": {"default": "done"}}}}
    assert invalid_paths(send(http, "POST", "/api/v1/strategies", doc)) == {"handlers.c.pacing.max_concurrent"}
    raw = ('{"name": "nan", "initial": "c", "handlers": {"c": {"type": "call", "message": "x", '
           '"pacing": {"max_concurrent": NaN}, "results": {"default": "done"}}}}')
    r = http.post("/api/v1/strategies", content=raw, headers={"content-type": "application/json"})
    assert invalid_paths(r) == {"handlers.c.pacing.max_concurrent"}


def at_the_caps(name: str, handlers: int, codes: int) -> dict:
    """A strategy of `handlers` handlers in a goto chain, each routing every one of `codes`
    custom codes (bench/strategy_validation.py builds its cases the same way)."""
    names = [f"h{i:04d}" for i in range(handlers)]
    custom = [f"c{i:03d}" for i in range(codes)]
    return {"name": name, "initial": names[0], "custom_codes": custom, "handlers": {
        h: {"type": "call", "message": "x", "results": {
            **{c: "done" for c in custom[:MAX_CODES_ROUTED]},
            "default": f"goto {names[i + 1]}" if i + 1 < handlers else "done"}}
        for i, h in enumerate(names)}}


MAX_CODES_ROUTED = 8            # codes named in each handler's results (as the bench's 8 codes)


def test_a_strategy_at_the_caps_is_accepted_and_one_over_is_422_at_the_field(http):
    from pom_actors.core.strategy import MAX_CUSTOM_CODES, MAX_HANDLERS

    r = send(http, "POST", "/api/v1/strategies", at_the_caps("at-the-caps", MAX_HANDLERS, MAX_CUSTOM_CODES))
    assert r.status_code == 201, r.text
    strategy_id = r.json()["id"]
    stored = http.get(f"/api/v1/strategies/{strategy_id}").json()["document"]
    assert (len(stored["handlers"]), len(stored["custom_codes"])) == (MAX_HANDLERS, MAX_CUSTOM_CODES)
    for handlers, codes, path, count in ((MAX_HANDLERS + 1, MAX_CUSTOM_CODES, "handlers", MAX_HANDLERS + 1),
                                         (MAX_HANDLERS, MAX_CUSTOM_CODES + 1, "custom_codes", MAX_CUSTOM_CODES + 1)):
        r = send(http, "POST", "/api/v1/strategies", at_the_caps("over-the-caps", handlers, codes))
        assert r.status_code == 422 and r.json()["error"] == "invalid_strategy", r.text
        assert [e["path"] for e in r.json()["errors"]] == [path] and str(count) in r.json()["errors"][0]["message"]
    assert http.delete(f"/api/v1/strategies/{strategy_id}").status_code == 204


def test_contact_rows_with_bad_text_are_refused_by_line_and_the_good_ones_land(http, refs):
    rows = phone_contacts(6)
    rows[1]["first_name"] = "Ada\u0000"
    rows[2]["attributes"] = {"segment": "gold", "note": "\ud800"}
    rows[3]["attributes"] = {"bad\u0000key": 1}
    rows[4]["attributes"] = {"n": BIG}
    dup = dict(rows[1], first_name="Ada")          # same external_id as the refused row 2: lands
    r = send(http, "POST", f"/api/v1/lists/{refs['list']}/contacts", rows + [dup])
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid_contacts" and body["imported"] == 3
    assert [(e["line"], e["field"]) for e in body["errors"]] == [
        (2, "first_name"), (3, "attributes.note"), (4, "attributes.bad\\u0000key"), (5, "attributes.n")]


def test_oversized_bodies_are_413_and_the_gateway_still_serves(http):
    huge = b"[" + b'"' + b"x" * (11 * 1024 * 1024) + b'"]'
    r = http.post("/api/v1/lists/1/contacts", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"] == "too_large"
    assert http.get("/api/v1/jobs").status_code == 200

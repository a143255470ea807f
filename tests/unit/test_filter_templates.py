"""Filter templates without a database: what reads the clock, and how a bad one is answered."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import errors
from pom_actors.core.filters import FilterError, parse
from pom_actors.store.filters import FilterConflict, uses_clock


def test_uses_clock_finds_now_and_today_anywhere():
    assert uses_clock(parse("created_at > now - 7 days"))
    assert uses_clock(parse("attr.x = 1 or not (attr.d between today - 1 month and today)"))
    assert uses_clock(parse("attr.d in (date '2026-01-01', today)"))
    assert not uses_clock(parse("attr.segment = 'today' and attr.now is null"))
    assert not uses_clock(parse("created_at > timestamp '2026-01-01 00:00'"))


def _app() -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.get("/bad")
    def bad():
        parse("first_name = 'x' and")

    @app.get("/busy")
    def busy():
        raise FilterConflict("filter 1 is used by campaign(s) c")

    return TestClient(app)


def test_a_bad_filter_is_a_422_with_its_position():
    r = _app().get("/bad")
    assert r.status_code == 422
    said = "expected a field, an attribute or a value, found the end of the filter"
    assert r.json() == {"type": "urn:pom:problem:invalid_filter", "title": "Invalid filter expression",
                        "status": 422, "detail": f"expression: {said}", "message": f"expression: {said}",
                        "error": "invalid_filter", "errors": [{
                            "path": "expression", "position": 20, "line": 1, "column": 21, "message": said}]}


def test_a_filter_in_use_is_a_409():
    r = _app().get("/busy")
    assert r.status_code == 409 and r.json()["error"] == "conflict"


def test_filter_error_is_a_value_error_with_a_dict():
    try:
        parse("attr.x = ")
    except FilterError as exc:
        assert set(exc.as_dict()) == {"message", "position", "line", "column"}

"""Every text and list a user sends is bounded by more than the 10 MiB body limit: beyond its
bound a field is a 422 naming it, before the request reaches the database (contact rows by
line and field, like their other faults). Each case here was stored or worked on whole before."""
from __future__ import annotations

import pytest

from api.routers.imports import MAX_MAPPING, MAX_PATH
from api.routers.lists import MAX_ROWS, _parse
from api.validation import MAX_DESCRIPTION
from pom_actors.core import attributes as attrs
from pom_actors.core.contacts import MAX_ADDRESS_CHARS, MAX_NAME_CHARS, MAX_TIMEZONES
from pom_actors.core import strategy as S
from pom_actors.core.rules import MAX_CHANNELS, MAX_CODES, MAX_NAME_CHARS as RULE_NAME, params_faults, RuleKind

from .test_api_validation import http  # noqa: F401  (the gateway fixture: no database, no director)

LONG = MAX_DESCRIPTION + 1


def paths(r) -> list[str]:
    assert r.status_code == 422, (r.status_code, r.text)
    return [e["path"] for e in r.json()["errors"]]


@pytest.mark.parametrize("method, url, body, path", [
    ("POST", "/api/v1/lists", {"name": "l", "description": "d" * LONG}, "description"),
    ("PATCH", "/api/v1/lists/1", {"description": "d" * LONG}, "description"),
    ("POST", "/api/v1/lists", {"name": "l", "attributes": ["a" * (attrs.MAX_KEY_CHARS + 1)]}, "attributes.0"),
    ("POST", "/api/v1/lists", {"name": "l", "attributes": [f"a{i}" for i in range(attrs.MAX_KEYS + 1)]},
     "attributes"),
    ("POST", "/api/v1/lists", {"name": "l", "attributes": [""]}, "attributes.0"),
    ("POST", "/api/v1/dnc-lists", {"name": "d", "description": "d" * LONG}, "description"),
    ("POST", "/api/v1/filters", {"name": "f", "expression": "true", "description": "d" * LONG}, "description"),
    ("PUT", "/api/v1/filters/1", {"description": "d" * LONG}, "description"),
    ("POST", "/api/v1/campaigns", {"name": "c", "strategy_id": 1, "list_id": 1, "description": "d" * LONG},
     "description"),
    ("PATCH", "/api/v1/campaigns/1", {"description": "d" * LONG}, "description"),
    ("POST", "/api/v1/lists/1/imports", {"path": "p" * (MAX_PATH + 1)}, "path"),
    ("POST", "/api/v1/lists/1/imports", {"path": "x.csv", "encoding": "e" * 65}, "encoding"),
    ("POST", "/api/v1/lists/1/imports", {"path": "x.csv", "delimiter": ";" * 9}, "delimiter"),
    ("POST", "/api/v1/lists/1/imports", {"path": "x.csv", "mapping": {"c": "t" * 301}}, "mapping.c"),
    ("POST", "/api/v1/lists/1/imports",
     {"path": "x.csv", "mapping": {f"c{i}": "ignore" for i in range(MAX_MAPPING + 1)}}, "mapping"),
    ("POST", "/api/v1/rules", {"kind": "channel", "params": {"blocked": ["sms"] * (MAX_CHANNELS + 1)}},
     "params.blocked"),
    ("POST", "/api/v1/rules", {"kind": "last_code", "params": {"codes": ["x" * (RULE_NAME + 1)]}},
     "params.codes.0"),
])
def test_a_field_beyond_its_bound_is_422_naming_it(http, method, url, body, path):  # noqa: F811
    assert paths(http.request(method, url, json=body)) == [path]


def test_contact_rows_are_at_most_max_rows_a_request_422_at_the_body(http):  # noqa: F811
    rows = [{"external_id": str(i), "phone1": "+12125550123"} for i in range(MAX_ROWS + 1)]
    r = http.post("/api/v1/lists/1/contacts", json=rows)
    assert paths(r) == ["body"] and str(MAX_ROWS) in r.json()["errors"][0]["message"]


@pytest.mark.parametrize("change, field", [
    ({"first_name": "A" * (MAX_NAME_CHARS + 1)}, "first_name"),
    ({"last_name": "B" * (MAX_NAME_CHARS + 1)}, "last_name"),
    ({"email": "a" * MAX_ADDRESS_CHARS + "@example.com"}, "email"),
    ({"phone2": "1" * (MAX_ADDRESS_CHARS + 1)}, "phone2"),
    ({"timezones": ["UTC"] * (MAX_TIMEZONES + 1)}, "timezones"),
    ({"timezones": [["UTC"]]}, "timezones"),
    ({"attributes": {f"k{i}": i for i in range(attrs.MAX_KEYS + 1)}}, "attributes"),
    ({"attributes": {"k" * (attrs.MAX_KEY_CHARS + 1): 1}}, "attributes"),
    ({"attributes": {"deep": [[[[[1]]]]]}}, "attributes.deep"),
    ({"attributes": {"big": "x" * attrs.MAX_BYTES}}, "attributes"),
])
def test_a_contact_row_beyond_a_bound_is_refused_by_line_and_field(change, field):
    good = {"external_id": "c1", "phone1": "+12125550123", "attributes": {"segment": "gold"}}
    ok, errors = _parse([good, {**good, "external_id": "c2", **change}])
    assert [c["external_id"] for c in ok] == ["c1"]
    assert [(e["line"], e["field"]) for e in errors] == [(2, field)], errors


def test_a_contact_row_at_its_bounds_is_taken():
    row = {"external_id": "c1", "first_name": "A" * MAX_NAME_CHARS, "phone1": "+12125550123",
           "timezones": ["UTC"] * MAX_TIMEZONES, "attributes": {f"k{i}": i for i in range(attrs.MAX_KEYS)}}
    ok, errors = _parse([row])
    assert errors == [] and len(ok[0]["attributes"]) == attrs.MAX_KEYS


def test_rule_lists_at_their_bound_are_taken():
    assert params_faults(RuleKind.LAST_CODE, {"codes": ["busy"] * MAX_CODES}) == []
    assert params_faults(RuleKind.LAST_CODE, {"codes": ["busy"] * (MAX_CODES + 1)})[0][0] == ("codes",)


def _strategy(**handler) -> dict:
    return {"name": "bounded", "initial": "c", "handlers": {"c": {
        "type": "custom", "url": "https://crm.example.com/hook", "addresses": ["phone1"],
        "results": {"default": "done"}, **handler}}}


@pytest.mark.parametrize("handler, path", [
    ({"message": "m" * (S.MAX_MESSAGE + 1)}, "handlers.c.message"),
    ({"subject": "s" * (S.MAX_SUBJECT + 1)}, "handlers.c.subject"),
    ({"sender": "s" * (S.MAX_SENDER + 1)}, "handlers.c.sender"),
    ({"caller_id": "1" * (S.MAX_SENDER + 1)}, "handlers.c.caller_id"),
    ({"url": "https://crm.example.com/" + "p" * S.MAX_URL}, "handlers.c.url"),
    ({"headers": {f"x-h{i}": "v" for i in range(S.MAX_HEADERS + 1)}}, "handlers.c.headers"),
    ({"headers": {"x-h": "v" * (S.MAX_HEADER_VALUE + 1)}}, "handlers.c.headers.x-h"),
    ({"addresses": ["phone1"] * (S.MAX_ADDRESSES + 1)}, "handlers.c.addresses"),
    ({"addresses": ["a" * (S.MAX_ADDRESS_NAME + 1)]}, "handlers.c.addresses.0"),
    ({"results": {"default": {"action": "goto", "handler": "h" * (S.MAX_REF + 1)}}}, "handlers.c.results.default.handler"),
    ({"results": {f"c{i}": "done" for i in range(S.MAX_RESULTS + 1)}}, "handlers.c.results"),
])
def test_a_strategy_handler_beyond_a_bound_is_422_at_its_path(http, handler, path):  # noqa: F811
    r = http.post("/api/v1/strategies", json=_strategy(**handler))
    assert path in paths(r), r.text


def test_a_strategy_initial_custom_code_and_skills_beyond_their_bounds_are_422(http):  # noqa: F811
    doc = _strategy()
    assert "initial" in paths(http.post("/api/v1/strategies", json={**doc, "initial": "c" * (S.MAX_REF + 1)}))
    r = http.post("/api/v1/strategies", json={**doc, "custom_codes": ["x" * (S.MAX_REF + 1)]})
    assert "custom_codes.0.name" in paths(r)
    doc["handlers"]["c"] = {"type": "call", "pacing": {"mode": "progressive"},
                            "agents": {"skills": [f"s{i}" for i in range(S.MAX_SKILLS + 1)]}}
    assert "handlers.c.agents.skills" in paths(http.post("/api/v1/strategies", json=doc))


def test_a_zone_beyond_the_most_there_may_be_is_a_conflict_before_any_insert(monkeypatch):
    from contextlib import nullcontext

    from pom_actors.core.zones import Zone, ZoneState
    from pom_actors.store import zones

    class Conn:
        def transaction(self):
            return nullcontext()

        def execute(self, sql, *_):
            raise AssertionError(f"nothing should be written: {sql}")

    full = {f"z{i}": Zone(f"z{i}", ZoneState.UP) for i in range(zones.MAX_ZONES)}
    monkeypatch.setattr(zones, "_locked", lambda _conn: full)
    with pytest.raises(zones.ZoneInUse, match="delete one first"):
        zones.create(Conn(), "one-more")
    monkeypatch.setattr(zones, "_locked", lambda _conn: dict(list(full.items())[1:]))
    monkeypatch.setattr(zones, "zone", lambda _conn, name: {"name": name})
    with pytest.raises(AssertionError, match="INSERT INTO zones"):        # one fewer: it is inserted
        zones.create(Conn(), "one-more")

"""Every paged list route answers `?limit`/`?after` pages by id with `Link: rel="next"` while a
page is full (api/pages.py), passing both to its store function; out-of-range values are 422."""
from __future__ import annotations

import pytest

from api.routers import agent_scripts, completion_codes, dnc, filters, import_schedules, imports, lists, tokens

ROUTES = [("/api/v1/tokens", tokens.store, "tokens"), ("/api/v1/dnc-lists", dnc.store, "lists"),
          ("/api/v1/filters", filters.store, "templates"),
          ("/api/v1/completion-codes", completion_codes.store, "codes"),
          ("/api/v1/agent-scripts", agent_scripts.store, "scripts"), ("/api/v1/imports", imports.store, "rows"),
          ("/api/v1/lists", lists.store, "rows"), ("/api/v1/import-schedules", import_schedules.store, "page")]
NAMED = [("/api/v1/lists", lists.store, "rows"), ("/api/v1/dnc-lists", dnc.store, "lists"),
         ("/api/v1/filters", filters.store, "templates")]


@pytest.mark.parametrize("path, module, name", ROUTES)
def test_a_list_comes_in_pages_with_a_next_link(http, monkeypatch, path, module, name):
    rows = [{"id": i} for i in (2, 3, 5, 8, 13)]
    monkeypatch.setattr(module, name, lambda _conn, after=0, limit=None, **_: [r for r in rows if r["id"] > after][:limit])
    r = http.get(path, params={"limit": 2})
    assert r.status_code == 200 and r.json() == [{"id": 2}, {"id": 3}], r.text
    assert r.headers["link"] == f'<http://testserver{path}?after=3&limit=2>; rel="next"'
    seen = r.json()
    while "link" in r.headers:
        r = http.get(r.headers["link"][1:].split(">")[0])
        seen += r.json()
    assert seen == rows
    assert "link" not in http.get(path).headers                # one page holds them all
    for bad in ({"limit": 0}, {"limit": 1001}, {"after": -1}, {"after": 2**63}):
        r = http.get(path, params=bad)
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == f"query.{next(iter(bad))}"


def test_imports_are_filtered_by_list_and_state_each_bounded(http, monkeypatch):
    asked = []
    monkeypatch.setattr(imports.store, "rows", lambda _conn, **query: asked.append(query) or [])
    assert http.get("/api/v1/imports", params={"list_id": 4, "state": "failed"}).json() == []
    assert asked == [{"list_id": 4, "dnc_list_id": None, "state": "failed", "after": 0, "limit": 1000}]
    for bad, at in (({"list_id": 0}, "list_id"), ({"dnc_list_id": 2**31}, "dnc_list_id"), ({"state": "lost"}, "state")):
        r = http.get("/api/v1/imports", params=bad)
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == f"query.{at}", r.text
    assert len(asked) == 1


@pytest.mark.parametrize("path, module, name", NAMED)
def test_a_named_resource_is_found_by_its_name_bounded(http, monkeypatch, path, module, name):
    asked = []
    monkeypatch.setattr(module, name, lambda _conn, **query: asked.append(query) or [])
    assert http.get(path, params={"name": "spring 2026"}).json() == []
    assert asked == [{"name": "spring 2026", "after": 0, "limit": 1000}]
    for bad in ("", "x" * 201, "a\x00b"):
        r = http.get(path, params={"name": bad})
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == "query.name", r.text
    assert len(asked) == 1


def test_tokens_are_filtered_by_role_and_revoked_and_the_link_keeps_the_filters(http, monkeypatch):
    asked = []
    monkeypatch.setattr(tokens.store, "tokens", lambda _conn, **query: asked.append(query) or [{"id": 7}])
    r = http.get("/api/v1/tokens", params={"role": "agent", "revoked": "false", "limit": 1})
    assert r.status_code == 200 and r.json() == [{"id": 7}], r.text
    assert asked == [{"role": "agent", "revoked": False, "after": 0, "limit": 1}]
    assert r.headers["link"] == '<http://testserver/api/v1/tokens?role=agent&revoked=false&after=7&limit=1>; rel="next"'
    http.get("/api/v1/tokens", params={"revoked": "true"})
    assert asked[-1] == {"role": None, "revoked": True, "after": 0, "limit": 1000}
    for bad, at in (({"role": "root"}, "role"), ({"revoked": "maybe"}, "revoked")):
        r = http.get("/api/v1/tokens", params=bad)
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == f"query.{at}", r.text
    assert len(asked) == 2


def test_alarms_come_newest_first_in_pages_before_an_id_with_the_state_kept(http, monkeypatch):
    from api.routers import load

    rows = [{"id": i, "state": "cleared"} for i in (13, 8, 5, 3, 2)]
    asked = []

    def alarms(_conn, state, before=None, limit=None):
        asked.append((state, before, limit))
        return [r for r in rows if before is None or r["id"] < before][:limit]
    monkeypatch.setattr(load.store, "alarms", alarms)
    r = http.get("/api/v1/alarms", params={"state": "cleared", "limit": 2})
    assert r.status_code == 200 and r.json() == rows[:2], r.text
    assert r.headers["link"] == '<http://testserver/api/v1/alarms?state=cleared&before=8&limit=2>; rel="next"'
    seen = r.json()
    while "link" in r.headers:
        r = http.get(r.headers["link"][1:].split(">")[0])
        seen += r.json()
    assert seen == rows and asked == [("cleared", None, 2), ("cleared", 8, 2), ("cleared", 3, 2)]
    assert "link" not in http.get("/api/v1/alarms").headers and asked[-1] == ("all", None, 1000)
    for bad, at in (({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"before": 0}, "before"),
                    ({"before": 2**63}, "before"), ({"state": "lost"}, "state")):
        r = http.get("/api/v1/alarms", params=bad)
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == f"query.{at}", r.text
    assert len(asked) == 4


def test_a_campaigns_dnc_lists_come_in_pages(http, monkeypatch):
    rows = [{"id": i} for i in (1, 4, 6)]
    asked = []

    def campaign_lists(_conn, campaign_id, after=0, limit=None):
        asked.append((campaign_id, after, limit))
        return [r for r in rows if r["id"] > after][:limit]
    monkeypatch.setattr(dnc.store, "campaign_lists", campaign_lists)
    r = http.get("/api/v1/campaigns/3/dnc-lists", params={"limit": 2})
    assert r.json() == rows[:2] and r.headers["link"] == (
        '<http://testserver/api/v1/campaigns/3/dnc-lists?after=4&limit=2>; rel="next"')
    assert http.get(r.headers["link"][1:].split(">")[0]).json() == rows[2:]
    assert asked == [(3, 0, 2), (3, 4, 2)]


def test_an_imports_rejects_come_in_pages_by_line_as_json_and_as_csv(http, monkeypatch):
    rejects = [{"line": n, "field": "phone1", "reason": "bad", "raw": [f"={n}"]} for n in (2, 5, 9)]
    asked = []

    def store_rejects(_conn, import_id, limit=None, after_line=0):
        asked.append((import_id, limit, after_line))
        return [r for r in rejects if r["line"] > after_line][:limit]
    monkeypatch.setattr(imports.store, "rejects", store_rejects)
    r = http.get("/api/v1/imports/7/rejects", params={"limit": 2})
    assert r.json() == {"import_id": 7, "rejects": rejects[:2], "next": 5}
    assert r.headers["link"] == '<http://testserver/api/v1/imports/7/rejects?after=5&limit=2>; rel="next"'
    last = http.get(r.headers["link"][1:].split(">")[0])
    assert last.json() == {"import_id": 7, "rejects": rejects[2:], "next": None} and "link" not in last.headers
    csv_page = http.get("/api/v1/imports/7/rejects", params={"limit": 2, "format": "csv"})
    assert csv_page.text == "line,field,reason,row\r\n2,phone1,bad,'=2\r\n5,phone1,bad,'=5\r\n"
    assert "after=5" in csv_page.headers["link"]
    http.get("/api/v1/imports/7/rejects")
    assert asked == [(7, 2, 0), (7, 2, 5), (7, 2, 0), (7, imports.REJECTS_PAGE, 0)]
    for bad in ({"limit": 0}, {"limit": imports.REJECTS_PAGE + 1}, {"after": -1}):
        r = http.get("/api/v1/imports/7/rejects", params=bad)
        assert r.status_code == 422 and r.json()["errors"][0]["path"] == f"query.{next(iter(bad))}", r.text
    assert len(asked) == 4

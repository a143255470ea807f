"""Every paged list route answers `?limit`/`?after` pages by id with `Link: rel="next"` while a
page is full (api/pages.py), passing both to its store function; out-of-range values are 422."""
from __future__ import annotations

import pytest

from api.routers import agent_scripts, completion_codes, dnc, filters, imports, lists, tokens

ROUTES = [("/api/v1/tokens", tokens.store, "tokens"), ("/api/v1/dnc-lists", dnc.store, "lists"),
          ("/api/v1/filters", filters.store, "templates"),
          ("/api/v1/completion-codes", completion_codes.store, "codes"),
          ("/api/v1/agent-scripts", agent_scripts.store, "scripts"), ("/api/v1/imports", imports.store, "rows"),
          ("/api/v1/lists", lists.store, "rows")]
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

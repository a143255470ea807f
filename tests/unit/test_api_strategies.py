"""The strategy version routes: bounded inputs refused with the field at fault before any
database is touched, and the store's answers carried as they are (a version in use: 409)."""
from __future__ import annotations

import pytest

from api.routers import strategies as router
from pom_actors.store.catalog import NotFound
from pom_actors.store.strategies import StrategyInUse


@pytest.mark.parametrize("url, path", [
    ("/api/v1/strategies/0", "path.strategy_id"), ("/api/v1/strategies/2147483648", "path.strategy_id"),
    ("/api/v1/strategies?name=" + "x" * 201, "query.name"), ("/api/v1/strategies?name=a%00b", "query.name"),
    ("/api/v1/strategies?limit=0", "query.limit"), ("/api/v1/strategies?after=-1", "query.after"),
])
def test_a_refused_read_names_the_field(http, url, path):
    r = http.get(url)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == path, r.text


def test_a_page_of_versions_links_the_next(http, monkeypatch):
    seen = []

    def rows(conn, name, *, after, limit):
        seen.append((name, after, limit))
        return [{"id": after + i + 1, "name": name, "version": i + 1, "latest": limit} for i in range(limit)]
    monkeypatch.setattr(router.store, "rows", rows)
    r = http.get("/api/v1/strategies?name=remind&limit=2&after=5")
    assert r.status_code == 200 and [v["id"] for v in r.json()] == [6, 7]
    assert seen == [("remind", 5, 2)] and "after=7" in r.headers["link"]


def test_deleting_a_version_in_use_is_a_conflict_and_an_unknown_one_not_found(http, monkeypatch):
    def delete(conn, strategy_id):
        raise (StrategyInUse("strategy 3 is used by campaign(s) spring") if strategy_id == 3
               else NotFound(f"strategy {strategy_id} does not exist"))
    monkeypatch.setattr(router.store, "delete", delete)
    r = http.delete("/api/v1/strategies/3")
    assert r.status_code == 409 and r.json()["error"] == "conflict" and "spring" in r.json()["detail"]
    assert http.delete("/api/v1/strategies/4").status_code == 404


def test_a_strategy_over_the_handler_bound_is_422_at_handlers(http):
    """Refused by counting, before any per-handler work (5,000 handlers once took hours)."""
    from pom_actors.core.strategy import MAX_HANDLERS
    handlers = {f"h{i}": {"type": "call", "results": {"default": f"goto h{i + 1}"}} for i in range(5000)}
    r = http.post("/api/v1/strategies", json={"name": "huge", "initial": "h0", "handlers": handlers})
    assert r.status_code == 422 and r.json()["errors"] == [
        {"path": "handlers", "message": f"at most {MAX_HANDLERS} handlers, not 5000"}], r.text

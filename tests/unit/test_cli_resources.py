"""`pom jobs|campaigns|rules|health|alarms|tokens|zones|audit` against a fake gateway
(httpx.MockTransport behind the real PomClient): tables by default, the exact JSON with
`--json`, `jobs watch` and its exit codes, and one line on stderr for every refusal."""
from __future__ import annotations

import json

import httpx
import pytest

from api import cli
from api.client import PomClient

JOB = {"id": 9, "campaign": "reminders", "campaign_id": 3, "state": "running", "reason": None, "zone": "default",
       "total": 4, "work_items": {"done": 1, "ready": 3}, "created_at": "2026-11-30T10:00:00Z", "ended_at": None}


class Gateway:
    """Answers by (method, path): a queue of (status, body) per route, the last one repeating."""

    def __init__(self):
        self.requests: list[httpx.Request] = []
        self.answers: dict[tuple[str, str], list[tuple[int, object]]] = {}

    def on(self, method: str, path: str, *answers: tuple[int, object]) -> "Gateway":
        self.answers.setdefault((method, path), []).extend(answers)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        queue = self.answers[(request.method, request.url.path)]
        status, body = queue.pop(0) if len(queue) > 1 else queue[0]
        return httpx.Response(status) if body is None else httpx.Response(status, json=body)


@pytest.fixture
def gw(monkeypatch) -> Gateway:
    gateway = Gateway()
    monkeypatch.setenv("COLUMNS", "200")                  # Rich's width: whole cells to look for
    monkeypatch.setattr(cli, "PomClient", lambda url, token: PomClient(url or "http://pom.test", token=token,
                                                                       transport=httpx.MockTransport(gateway)))
    return gateway


def out_err(capsys) -> tuple[str, str]:
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_jobs_list_is_a_table_by_default_and_the_exact_json_with_json(gw, capsys):
    gw.on("GET", "/api/v1/jobs", (200, [JOB, {**JOB, "id": 10, "state": "completed"}]))
    assert cli.main(["jobs", "list", "--state", "running"]) == 0
    out, _ = out_err(capsys)
    assert "reminders" in out and "done=1 ready=3" in out and "completed" in out
    assert gw.requests[0].url.params["state"] == "running"
    for argv in (["jobs", "list", "--json"], ["--json", "jobs", "list"]):
        assert cli.main(argv) == 0
        assert json.loads(out_err(capsys)[0]) == [JOB, {**JOB, "id": 10, "state": "completed"}]


def test_jobs_commands_and_create(gw, capsys):
    gw.on("POST", "/api/v1/jobs/9/pause", (200, {**JOB, "state": "pausing"}))
    gw.on("POST", "/api/v1/jobs", (201, {**JOB, "id": 11}))
    assert cli.main(["--json", "jobs", "pause", "9"]) == 0
    assert json.loads(out_err(capsys)[0])["state"] == "pausing"
    assert cli.main(["jobs", "create", "3", "--zone", "east", "--idempotency-key", "k1"]) == 0
    assert "job 11" in out_err(capsys)[0]
    assert json.loads(gw.requests[-1].content) == {"campaign": 3, "start": True, "zone": "east"}
    assert gw.requests[-1].headers["idempotency-key"] == "k1"


def test_jobs_watch_exits_0_when_the_job_completed(gw, capsys):
    done = {**JOB, "state": "completed", "work_items": {"done": 4}, "attempts_by_code": {"answer_human": 4}}
    gw.on("GET", "/api/v1/jobs/9", (200, JOB), (200, JOB), (200, done))
    assert cli.main(["jobs", "watch", "9", "--interval", "0.01"]) == 0
    out, _ = out_err(capsys)
    assert "completed" in out and "answer_human" in out
    assert len(gw.requests) == 3


def test_jobs_watch_with_json_prints_each_reading_as_a_json_line(gw, capsys):
    gw.on("GET", "/api/v1/jobs/9", (200, JOB), (200, {**JOB, "state": "completed"}))
    assert cli.main(["jobs", "watch", "9", "--interval", "0.01", "--json"]) == 0
    assert [json.loads(line)["state"] for line in out_err(capsys)[0].splitlines()] == ["running", "completed"]


def test_jobs_watch_exits_1_with_the_reason_when_the_job_did_not_complete(gw, capsys):
    gw.on("GET", "/api/v1/jobs/9", (200, JOB), (200, {**JOB, "state": "stopped", "reason": "stopped by a command"}))
    assert cli.main(["jobs", "watch", "9", "--interval", "0.01"]) == 1
    assert out_err(capsys)[1] == "pom: job 9 stopped: stopped by a command\n"


def test_jobs_watch_gives_up_after_its_timeout(gw, capsys):
    gw.on("GET", "/api/v1/jobs/9", (200, JOB))
    assert cli.main(["jobs", "watch", "9", "--interval", "0.01", "--timeout", "0.05"]) == 1
    assert out_err(capsys)[1].startswith("pom: job 9 still running after 0.05 s")


@pytest.mark.parametrize("status,body,line", [
    (401, {"error": "unauthorized", "detail": "no API token"},
     "pom: HTTP 401: no API token (give a token: --token, $POM_TOKEN or $POM_DATA_DIR/admin-token)"),
    (403, {"error": "forbidden", "detail": "role agent may not GET /api/v1/jobs"},
     "pom: HTTP 403: role agent may not GET /api/v1/jobs"),
    (404, {"error": "not_found", "detail": "job 9 not found"}, "pom: HTTP 404: job 9 not found"),
    (422, {"error": "invalid", "detail": "2 faults", "errors": [{"path": "query.state", "message": "bad\nstate"},
                                                                {"path": "query.limit", "message": "too big"}]},
     "pom: HTTP 422: query.state: bad state (and 1 more)"),
    (409, {"error": "illegal_transition", "detail": "job in state queued cannot take event pause"},
     "pom: HTTP 409: job in state queued cannot take event pause"),
])
def test_every_refusal_is_one_line_on_stderr_and_exit_1(gw, capsys, status, body, line):
    gw.on("GET", "/api/v1/jobs/9", (status, body))
    assert cli.main(["jobs", "show", "9"]) == 1
    out, err = out_err(capsys)
    assert out == "" and err == line + "\n"


def test_an_unreachable_gateway_is_one_line_naming_it(capsys):
    assert cli.main(["--url", "http://127.0.0.1:9", "campaigns", "list"]) == 1
    err = out_err(capsys)[1]
    assert err.startswith("pom: cannot reach the gateway at http://127.0.0.1:9: ") and err.count("\n") == 1


def test_campaign_changes_send_what_was_given_and_bad_json_exits_2_before_any_request(gw, capsys):
    gw.on("PATCH", "/api/v1/campaigns/3", (200, {"id": 3, "name": "reminders", "enabled": False}))
    gw.on("DELETE", "/api/v1/campaigns/3", (204, None))
    assert cli.main(["campaigns", "disable", "3"]) == 0
    assert json.loads(gw.requests[-1].content) == {"enabled": False}
    assert cli.main(["campaigns", "update", "3", "--priority", "7", "--schedule", "null"]) == 0
    assert json.loads(gw.requests[-1].content) == {"priority": 7, "schedule": None}
    assert cli.main(["campaigns", "delete", "3"]) == 0
    capsys.readouterr()
    assert cli.main(["campaigns", "update", "3"]) == 2
    assert "nothing to change" in out_err(capsys)[1]
    with pytest.raises(SystemExit) as usage:
        cli.main(["rules", "create", "nuisance", "--params", "{max: 3"])
    assert usage.value.code == 2 and "--params: not JSON" in out_err(capsys)[1]
    assert len(gw.requests) == 3


def test_rules_list_follows_every_page_and_create_sends_the_rule(gw, capsys):
    gw.on("GET", "/api/v1/rules", (200, [{"id": 1, "kind": "nuisance", "campaign_id": None, "enabled": True,
                                          "params": {"max_per_day": 3}}]))
    gw.on("POST", "/api/v1/rules", (201, {"id": 2, "kind": "nuisance"}))
    assert cli.main(["rules", "list", "--system"]) == 0
    assert "max_per_day=3" in out_err(capsys)[0]
    assert gw.requests[0].url.params["system"] == "true" and gw.requests[0].url.params["limit"] == "1000"
    assert cli.main(["rules", "create", "nuisance", "--params", '{"max_per_day": 2}', "--campaign", "3"]) == 0
    assert json.loads(gw.requests[-1].content) == {"kind": "nuisance", "params": {"max_per_day": 2},
                                                   "campaign_id": 3, "enabled": True}


def test_health_alarms_tokens_and_zones_are_tables(gw, capsys):
    gw.on("GET", "/health", (503, {"status": "degraded", "components": {"database": {"state": "up"},
                                                                       "director": {"state": "down", "error": "x"}}}))
    gw.on("GET", "/api/v1/alarms", (200, [{"id": 1, "metric": "server.cpu", "state": "active"}]))
    gw.on("GET", "/api/v1/tokens", (200, [{"id": 4, "name": "ci", "role": "integration"}]))
    gw.on("GET", "/api/v1/zones", (200, {"zones": [{"name": "east", "state": "up"}], "default_zone": "east",
                                         "unzoned_servers": 0}))
    assert cli.main(["health"]) == 0
    out = out_err(capsys)[0]
    assert "POM degraded" in out and "director" in out and "error=x" in out
    assert cli.main(["alarms", "--state", "active"]) == 0
    assert "server.cpu" in out_err(capsys)[0] and gw.requests[-1].url.params["state"] == "active"
    assert cli.main(["tokens", "list"]) == 0 and "integration" in out_err(capsys)[0]
    assert cli.main(["zones", "list"]) == 0 and "default_zone=east" in out_err(capsys)[0]
    assert cli.main(["zones", "list", "--json"]) == 0
    assert json.loads(out_err(capsys)[0])["default_zone"] == "east"


def test_alarms_a_page_newest_first_or_all_pages_following_the_link(monkeypatch, capsys):
    seen: list[httpx.URL] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        before = int(request.url.params.get("before", 10))
        rows = [{"id": i, "metric": "server.cpu", "state": "cleared"} for i in range(before - 1, max(before - 4, 0), -1)]
        nxt = {"Link": f'<http://pom.test/api/v1/alarms?state=cleared&before={rows[-1]["id"]}&limit=3>; rel="next"'}
        return httpx.Response(200, json=rows, headers=nxt if before > 4 else {})
    monkeypatch.setattr(cli, "PomClient", lambda url, token: PomClient(url or "http://pom.test", token=token,
                                                                       transport=httpx.MockTransport(gateway)))
    assert cli.main(["alarms", "--state", "cleared", "--limit", "3", "--before", "7", "--json"]) == 0
    assert [a["id"] for a in json.loads(out_err(capsys)[0])] == [6, 5, 4]
    assert dict(seen[-1].params) == {"state": "cleared", "limit": "3", "before": "7"}
    seen.clear()
    assert cli.main(["alarms", "--state", "cleared", "--all", "--json"]) == 0
    assert [a["id"] for a in json.loads(out_err(capsys)[0])] == [9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert [dict(u.params).get("before") for u in seen] == [None, "7", "4"]
    assert all(u.params["state"] == "cleared" for u in seen)


def test_tokens_list_filters_by_role_and_revoked(gw, capsys):
    gw.on("GET", "/api/v1/tokens", (200, [{"id": 4, "name": "ci", "role": "integration", "revoked_at": None}]))
    assert cli.main(["tokens", "list", "--role", "integration", "--no-revoked", "--json"]) == 0
    assert json.loads(out_err(capsys)[0])[0]["name"] == "ci"
    assert dict(gw.requests[-1].url.params) == {"role": "integration", "revoked": "false", "limit": "1000"}
    assert cli.main(["tokens", "list", "--revoked"]) == 0
    assert dict(gw.requests[-1].url.params) == {"revoked": "true", "limit": "1000"}
    with pytest.raises(SystemExit) as refused:
        cli.main(["tokens", "list", "--role", "nobody"])
    assert refused.value.code == 2


def test_strategies_list_is_a_table_show_json_and_a_delete_in_use_exits_1(gw, capsys):
    gw.on("GET", "/api/v1/strategies", (200, [{"id": 4, "name": "remind", "version": 2, "latest": 3,
                                               "created_at": "2026-11-30T10:00:00Z"}]))
    gw.on("GET", "/api/v1/strategies/4", (200, {"id": 4, "name": "remind", "document": {"name": "remind"}}))
    gw.on("DELETE", "/api/v1/strategies/4", (409, {"error": "conflict", "detail": "used by campaign(s) spring"}))
    assert cli.main(["strategies", "list", "--name", "remind"]) == 0
    assert "remind" in out_err(capsys)[0] and gw.requests[0].url.params["name"] == "remind"
    assert cli.main(["strategies", "show", "4", "--json"]) == 0
    assert json.loads(out_err(capsys)[0])["document"] == {"name": "remind"}
    assert cli.main(["strategies", "delete", "4"]) == 1
    assert "spring" in out_err(capsys)[1]

"""The commands that set a system up from the terminal alone, against a fake gateway (the `gw`
fixture of test_cli_resources): `pom strategies create`, `pom campaigns create`, the `pom agents`
group, `pom jobs pacing`, and the idempotency keys of `pom jobs start` and `pom lists import`.
What is sent, tables by default and the JSON with --json, exit 2 before any request for bad
input, one line and exit 1 for a refusal."""
from __future__ import annotations

import json

import pytest

from api import cli
from tests.unit.test_cli_resources import gw, out_err  # noqa: F401  (gw: a fixture)

STRATEGY = """\
name: remind
initial: call
handlers:
  call:
    type: call
    results:
      busy: done
"""


def test_strategies_create_uploads_the_file_as_json_after_checking_it(gw, capsys, tmp_path):
    gw.on("POST", "/api/v1/strategies", (201, {"id": 7, "name": "remind", "version": 2}))
    good = tmp_path / "remind.yaml"
    good.write_text(STRATEGY)
    assert cli.main(["strategies", "create", str(good), "--list", "3"]) == 0
    sent = gw.requests[-1]
    assert json.loads(sent.content)["handlers"]["call"]["type"] == "call" and sent.url.params["list_id"] == "3"
    assert "remind" in out_err(capsys)[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text(STRATEGY.replace("initial: call", "initial: nowhere"))
    for path, said in ((bad, "initial"), (tmp_path / "missing.yaml", "No such file")):
        assert cli.main(["strategies", "create", str(path)]) == 2
        err = out_err(capsys)[1]
        assert err.startswith(f"pom: {path}: ") and said in err and err.count("\n") == 1
    assert len(gw.requests) == 1


def test_campaigns_create_sends_what_was_given(gw, capsys):
    gw.on("POST", "/api/v1/campaigns", (201, {"id": 4, "name": "spring", "list_id": 2}),
          (422, {"error": "invalid", "errors": [{"path": "body.name", "message": "already taken"}]}))
    assert cli.main(["campaigns", "create", "spring", "--strategy", "7", "--list", "2", "--priority", "8",
                     "--zone", "east", "--json"]) == 0
    assert json.loads(gw.requests[-1].content) == {"name": "spring", "strategy_id": 7, "list_id": 2,
                                                   "description": "", "priority": 8, "zone": "east"}
    assert json.loads(out_err(capsys)[0])["id"] == 4
    assert cli.main(["campaigns", "create", "spring", "--strategy", "7", "--lists", '[{"list_id": 2}]']) == 1
    assert json.loads(gw.requests[-1].content)["lists"] == [{"list_id": 2}]
    assert out_err(capsys)[1] == "pom: HTTP 422: body.name: already taken\n"
    with pytest.raises(SystemExit) as usage:
        cli.main(["campaigns", "create", "spring", "--strategy", "7"])
    assert usage.value.code == 2 and "--list --lists is required" in out_err(capsys)[1]
    assert len(gw.requests) == 2


AGENT = {"id": 5, "login": "ann", "skills": ["en"], "state": "ready", "since": None, "reason": None,
         "job_id": 9, "call_id": None, "pending": None, "pinned": False, "moving": False, "moving_to": None}


def test_agents_commands(gw, capsys):
    gw.on("GET", "/api/v1/agents", (200, [AGENT]))
    gw.on("POST", "/api/v1/agents", (201, AGENT))
    gw.on("POST", "/api/v1/agents/ann/move", (200, {**AGENT, "pinned": True}))
    gw.on("POST", "/api/v1/agents/ann/force-logoff", (409, {"error": "conflict", "detail": "ann is logged out"}))
    gw.on("GET", "/api/v1/jobs/9/agents", (200, {"job_id": 9, "min_agents": 1, "members": [AGENT]}))
    gw.on("PUT", "/api/v1/jobs/9/agents", (200, {"job_id": 9, "max_agents": None}))
    assert cli.main(["agents", "list", "--state", "ready"]) == 0
    assert "ann" in out_err(capsys)[0] and gw.requests[-1].url.params["state"] == "ready"
    assert cli.main(["agents", "create", "ann", "--skill", "en", "--skill", "fr", "--name", "Ann"]) == 0
    assert json.loads(gw.requests[-1].content) == {"login": "ann", "name": "Ann", "skills": ["en", "fr"], "groups": []}
    assert cli.main(["agents", "move", "ann", "--unpin"]) == 0
    assert json.loads(gw.requests[-1].content) == {"job_id": None}
    assert cli.main(["agents", "job", "9"]) == 0 and "ann" in out_err(capsys)[0]
    assert cli.main(["agents", "limits", "9", "--no-max", "--min", "1"]) == 0
    assert json.loads(gw.requests[-1].content) == {"min": 1, "max": None}
    capsys.readouterr()
    assert cli.main(["agents", "force-logoff", "ann"]) == 1
    assert out_err(capsys)[1] == "pom: HTTP 409: ann is logged out\n"
    sent = len(gw.requests)
    assert cli.main(["agents", "limits", "9"]) == 2 and "nothing to change" in out_err(capsys)[1]
    for argv in (["agents", "create", "ann", "--skill", "no spaces"], ["agents", "limits", "9", "--min", "-1"],
                 ["agents", "show", "x" * 101]):
        with pytest.raises(SystemExit) as usage:
            cli.main(argv)
        assert usage.value.code == 2
    assert len(gw.requests) == sent


def test_agents_groups_update_and_delete(gw, capsys):
    grouped = {**AGENT, "groups": ["gold"]}
    gw.on("GET", "/api/v1/agents", (200, [grouped]))
    gw.on("POST", "/api/v1/agents", (201, grouped))
    gw.on("PATCH", "/api/v1/agents/ann", (200, grouped), (200, {**grouped, "skills": [], "groups": []}))
    gw.on("DELETE", "/api/v1/agents/ann", (204, None),
          (409, {"error": "conflict", "detail": "agent 'ann' is ready: log it off first (force-logoff)"}))
    assert cli.main(["agents", "create", "ann", "--group", "gold", "--group", "team.2"]) == 0
    assert json.loads(gw.requests[-1].content)["groups"] == ["gold", "team.2"]
    assert cli.main(["agents", "list", "--group", "gold"]) == 0
    assert gw.requests[-1].url.params["group"] == "gold" and "gold" in out_err(capsys)[0]
    assert cli.main(["agents", "update", "ann", "--group", "gold", "--name", "Ann", "--json"]) == 0
    assert json.loads(gw.requests[-1].content) == {"name": "Ann", "groups": ["gold"]}
    assert json.loads(out_err(capsys)[0])["groups"] == ["gold"]
    assert cli.main(["agents", "update", "ann", "--no-skills", "--no-groups"]) == 0
    assert json.loads(gw.requests[-1].content) == {"skills": [], "groups": []}
    assert cli.main(["agents", "delete", "ann"]) == 0 and gw.requests[-1].method == "DELETE"
    assert cli.main(["agents", "delete", "ann"]) == 1
    assert "log it off first" in out_err(capsys)[1]
    sent = len(gw.requests)
    assert cli.main(["agents", "update", "ann"]) == 2 and "nothing to change" in out_err(capsys)[1]
    many = [arg for i in range(101) for arg in ("--group", f"g{i}")]
    assert cli.main(["agents", "create", "ann", *many]) == 2 and "at most 100" in out_err(capsys)[1]
    for argv in (["agents", "create", "ann", "--group", "no spaces"], ["agents", "list", "--group", "a b"],
                 ["agents", "update", "ann", "--group", "g", "--no-groups"], ["agents", "delete", "x" * 101]):
        with pytest.raises(SystemExit) as usage:
            cli.main(argv)
        assert usage.value.code == 2
    assert len(gw.requests) == sent


def test_jobs_pacing_is_a_table_of_handlers_and_managers(gw, capsys):
    pacing = {"job_id": 9, "state": "running",
              "handlers": {"call": {"mode": "predictive", "applied": "predictive", "dials": 4, "lines_per_agent": 1.5,
                                    "abandon_rate": 0.01, "alarm": None}},
              "managers": [{"name": "manager-9-0", "state": "down", "error": "no answer"}]}
    gw.on("GET", "/api/v1/jobs/9/pacing", (200, pacing))
    assert cli.main(["jobs", "pacing", "9"]) == 0
    out = out_err(capsys)[0]
    assert "predictive" in out and "1.5" in out and "manager-9-0" in out and "no answer" in out
    assert cli.main(["jobs", "pacing", "9", "--json"]) == 0
    assert json.loads(out_err(capsys)[0]) == pacing


def test_job_start_and_list_import_send_the_idempotency_key(gw, capsys, tmp_path):
    gw.on("POST", "/api/v1/jobs/9/start", (200, {"id": 9, "state": "running"}))
    gw.on("POST", "/api/v1/lists/2/imports", (202, {"id": 11, "state": "queued", "list_id": 2}))
    assert cli.main(["jobs", "start", "9", "--idempotency-key", "k-1"]) == 0
    assert gw.requests[-1].headers["idempotency-key"] == "k-1"
    data = tmp_path / "c.csv"
    data.write_text("external_id,phone1\n1,+15555550100\n")
    assert cli.main(["lists", "import", str(data), "--list", "2", "--no-wait", "--idempotency-key", "k-2"]) == 0
    assert gw.requests[-1].headers["idempotency-key"] == "k-2"

"""Run-time changes of a job (core/jobchanges.py; PATCH /api/v1/jobs/{id}) and stored agent
scripts (core/scripts.py; /api/v1/agent-scripts): refused input names its field before any
database is touched, a pacing change gives the handler a new pacer at the managers' next
renewal, a job's own priority reaches the Agent Manager at the director's next tick, and a
strategy's handler shows the stored script it names."""
from __future__ import annotations

import asyncio

import pytest

from api.cli import parser
from api.cli_jobs import changes
from api.cli_output import UsageError
from pom_actors.core.agents.desk import screen_pop
from pom_actors.core.jobchanges import JobChangeError, changed_pacing, effective
from pom_actors.core.outbound import OutboundPolicy
from pom_actors.core.scripts import AgentScript, ScriptError, check_script
from pom_actors.core.strategy import StrategyError, parse_strategy
from tests.unit.test_director_service import Cluster

STRATEGY = parse_strategy({"name": "rt", "initial": "call", "handlers": {
    "call": {"type": "call", "pacing": {"mode": "predictive", "settings": {"target": 0.03}, "max_concurrent": 20},
             "script": {"name": "welcome"}},
    "sms": {"type": "sms", "message": "hi", "pacing": {"attempts_per_second": 5}}}})


# -- pacing changes -----------------------------------------------------------------------------
def test_a_pacing_change_merges_over_the_strategys_and_can_be_undone():
    stored = changed_pacing(STRATEGY, {}, {"call": {"settings": {"target": 0.02}, "max_concurrent": None}})
    assert stored == {"call": {"mode": "predictive", "settings": {"target": 0.02}, "max_concurrent": None,
                               "attempts_per_second": None}}
    again = changed_pacing(STRATEGY, stored, {"sms": {"attempts_per_second": 1.5}})
    assert again["call"] == stored["call"] and again["sms"]["attempts_per_second"] == 1.5
    assert effective(STRATEGY, again)["sms"].attempts_per_second == 1.5
    assert changed_pacing(STRATEGY, again, {"call": None}).keys() == {"sms"}
    assert changed_pacing(STRATEGY, again, None) == {}
    assert effective(STRATEGY, {})["call"] == STRATEGY.handlers["call"].pacing


@pytest.mark.parametrize("change, field", [
    ({"email": {}}, "pacing.email"),
    ({"call": {"mode": "preview"}}, "pacing.call.mode"),
    ({"call": {"settings": {"target": 0.9}}}, "pacing.call.settings.target"),
    ({"call": {"settings": {"bogus": 1}}}, "pacing.call.settings.bogus"),
    ({"call": {"settings": [1]}}, "pacing.call.settings"),
    ({"sms": {"settings": {"target": 0.1}}}, "pacing.sms.settings"),
    ({"sms": {"max_concurrent": 0}}, "pacing.sms.max_concurrent"),
    ({"sms": {"attempts_per_second": "fast"}}, "pacing.sms.attempts_per_second"),
])
def test_a_refused_pacing_change_names_the_field(change, field):
    with pytest.raises(JobChangeError) as refused:
        changed_pacing(STRATEGY, {}, change)
    assert refused.value.field == field


@pytest.mark.parametrize("body, path", [
    ({"priority": 0}, "priority"), ({"priority": 11}, "priority"), ({"priority": "high"}, "priority"),
    ({"filter_id": 0}, "filter_id"), ({"filter_id": 2**31}, "filter_id"),
    ({"pacing": {"call": 5}}, "pacing.call"), ({"pacing": {"x" * 65: {}}}, "pacing"),
    ({"pacing": {"call": {"settings": {"k": "\u0000"}}}}, "pacing.call.settings.k"),
    ({"state": "running"}, "state"),
])
def test_a_refused_job_change_names_the_field(http, body, path):
    r = http.patch("/api/v1/jobs/1", json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["path"].startswith(path), r.text


def test_managers_take_a_pacing_change_at_their_next_renewal():
    c = Cluster()
    job_id = asyncio.run(c.director.create_job(1))
    manager = c.managers()[0]
    before = manager.pacers["call"]
    c.db.jobs[job_id]["pacing"] = changed_pacing(c.db.strategies[1], {}, {"call": {"max_concurrent": 3}})
    asyncio.run(manager._renew())
    assert manager.pacers["call"] is not before and manager.pacers["call"].figures["max_concurrent"] is not None
    changed = manager.pacers["call"]
    asyncio.run(manager._renew())
    assert manager.pacers["call"] is changed                       # unchanged: the same pacer goes on
    c.db.jobs[job_id]["pacing"] = {}
    asyncio.run(manager._renew())
    assert manager.pacers["call"] is not changed and manager.pacing_changes == {}


def test_a_jobs_own_priority_reaches_the_agent_manager_at_the_next_tick():
    c = Cluster()
    c.db.strategies[2] = parse_strategy({"name": "agents", "initial": "call", "handlers": {"call": {
        "type": "call", "pacing": {"mode": "progressive"}}}})
    campaign = c.db.add_campaign("agent-based")
    c.db.campaigns[campaign].update(strategy_id=2, priority=4)
    job_id = asyncio.run(c.director.create_job(campaign))
    assert c.fleet.agent_jobs[-1][0][0].priority == 4
    c.db.jobs[job_id]["priority"] = 9
    asyncio.run(c.director.tick())
    assert c.fleet.agent_jobs[-1][0][0].priority == 9


# -- agent scripts -----------------------------------------------------------------------------
def test_a_script_is_checked_before_it_is_stored():
    policy = OutboundPolicy()
    assert check_script("welcome", "text", "Hello {first_name}", policy) == AgentScript("welcome", "text",
                                                                                        "Hello {first_name}")
    assert check_script("crm", "url", "https://crm.example.com/c/{external_id}", policy).kind == "url"
    for name, kind, body, field in [("Welcome", "text", "x", "name"), ("w", "html", "x", "kind"),
                                    ("w", "text", "", "body"), ("w", "text", "x" * 65537, "body"),
                                    ("w", "url", "https://x.example/" + "a" * 4096, "body"),
                                    ("w", "text", "Hi {first_name!r}", "body"), ("w", "text", "{", "body"),
                                    ("w", "url", "ftp://crm.example.com/", "body"),
                                    ("w", "url", "http://127.0.0.1:8080/api/v1/jobs", "body"),
                                    ("w", "url", "http://169.254.169.254/latest", "body")]:
        with pytest.raises(ScriptError) as refused:
            check_script(name, kind, body, policy)
        assert refused.value.field == field, (name, kind, body)
    assert check_script("w", "url", "http://10.1.2.3/crm", OutboundPolicy(["10.0.0.0/8"])).body.endswith("crm")


@pytest.mark.parametrize("body, path", [
    ({"name": "ok", "body": "x", "kind": "pdf"}, "kind"), ({"name": "ok"}, "body"),
    ({"name": "Not ok", "body": "x"}, "name"), ({"name": "ok", "body": "x\u0000"}, "body"),
    ({"name": "ok", "body": "Hi {a.b}"}, "body"), ({"name": "ok", "kind": "url", "body": "http://localhost/"}, "body"),
    ({"name": "ok", "body": "x", "extra": 1}, "extra"),
])
def test_a_refused_script_names_the_field(http, body, path):
    r = http.post("/api/v1/agent-scripts", json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == path, r.text


def test_a_handler_shows_the_stored_script_it_names_or_none():
    assert STRATEGY.script_names() == {"welcome"}
    contact = {"first_name": "Ada", "attributes": {}}
    found = STRATEGY.with_scripts({"welcome": AgentScript("welcome", "text", "Hello {first_name}")})
    assert screen_pop("c1", 1, contact, found, "call")["script"] == {"text": "Hello Ada"}
    assert screen_pop("c1", 1, contact, STRATEGY.with_scripts({}), "call")["script"] is None   # disabled or gone
    with pytest.raises(StrategyError) as refused:
        parse_strategy({"name": "s", "initial": "c", "handlers": {"c": {
            "type": "call", "pacing": {"mode": "progressive"}, "script": {"name": "welcome", "text": "x"}}}})
    assert refused.value.errors[0]["path"] == "handlers.c.script"


# -- the CLI -----------------------------------------------------------------------------------
def test_pom_jobs_set_builds_the_patch_and_refuses_nothing_to_change():
    args = parser().parse_args(["jobs", "set", "3", "--priority", "campaign", "--pacing", "call.settings.target=0.02",
                                "--pacing", "call.max_concurrent=null", "--reset-pacing", "sms", "--filter", "4"])
    assert changes(args) == {"priority": None, "filter_id": 4, "pacing": {
        "call": {"settings": {"target": 0.02}, "max_concurrent": None}, "sms": None}}
    with pytest.raises(UsageError):
        changes(parser().parse_args(["jobs", "set", "3"]))
    for bad in (["--priority", "11"], ["--pacing", "call.mode=preview"], ["--pacing", "call"],
                ["--filter", "1", "--no-filter"]):
        with pytest.raises(SystemExit):
            parser().parse_args(["jobs", "set", "3", *bad])

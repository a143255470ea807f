"""The Agent Manager's side of the Agent SDK: the change feed (cursor, long poll, reset), desk
commands by login, preview offers, screen pops and dispositions with call-backs, the jobs a
director tells it (idempotent, supervisor limits kept), and strategy → job spec."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from pom_actors.core.agents.attachment import JobSpec
from pom_actors.core.agents.desk import DispositionError, render_script, screen_pop
from pom_actors.core.agents.jobs import job_demand, job_demands
from pom_actors.core.agents.licenses import Demand
from pom_actors.core.agents.state import IllegalAgentTransition
from pom_actors.core.strategy import StrategyError, parse_strategy
from pom_actors.services import agent_manager as am
from tests.unit.test_agent_manager_service import Floor


def frames(svc, cursor):
    out = svc.changes_since(cursor)
    return out["cursor"], out["frames"]


# -- the change feed ----------------------------------------------------------------------------
def test_every_transition_is_a_frame_in_order_with_its_time():
    f = Floor(2)
    f.svc.set_jobs([JobSpec(1)])
    start = f.svc.changes_since(None)
    assert start == {"cursor": f.svc.cursor, "reset": False, "frames": []}
    a, b = f.ids
    f.svc.desk("a0", "login")
    f.clock.advance(5)
    f.svc.desk("a0", "ready")
    f.svc.tick()                                          # rebalance: a0 attached to job 1
    cursor, got = frames(f.svc, start["cursor"])
    assert [(x["agent"], x["previous"], x["state"], x["event"]) for x in got] == [
        ("a0", "logged_out", "not_ready", "login"), ("a0", "not_ready", "ready", "ready"),
        ("a0", "ready", "ready", "attach"), ("a0", "ready", "ready", "nail")]
    assert got[1]["at"] == f.clock.t and got[0]["at"] == f.clock.t - timedelta(seconds=5)
    assert got[2]["job_id"] == 1 and [x["seq"] for x in got] == [1, 2, 3, 4]
    assert got[3]["reason"] == f.svc.sessions()["a0"]["session_id"]      # the session's id
    assert frames(f.svc, cursor) == (cursor, [])          # nothing new
    f.svc.force_logoff(a)
    cursor2, got = frames(f.svc, cursor)
    assert [(x["state"], x["event"]) for x in got] == [("logged_out", "force_logoff"), ("logged_out", "detach"),
                                                       ("logged_out", "unnail")]
    assert got[0]["reason"] == "supervisor" and cursor2.endswith(":7")


def test_a_cursor_of_another_incarnation_or_too_old_resets():
    f = Floor(1)
    old = f.svc.cursor
    f.svc.desk("a0", "login")
    f.svc.tick()
    f.restart()                                           # a new incarnation rebuilt from the store
    assert f.svc.changes_since(old) == {"cursor": f.svc.cursor, "reset": True, "frames": []}
    assert f.svc.changes_since("garbage")["reset"] and f.svc.changes_since(f.svc.cursor + "9")["reset"]
    f.svc.feed.entries = type(f.svc.feed.entries)(maxlen=2)
    first = f.svc.cursor
    f.svc.desk("a0", "ready")
    f.svc.desk("a0", "not_ready", reason="break")
    assert not f.svc.changes_since(first)["reset"]        # still covered
    f.svc.desk("a0", "ready")
    assert f.svc.changes_since(first)["reset"]            # fell out of the feed


def test_the_long_poll_returns_at_the_first_change_and_times_out_empty():
    f = Floor(1)

    async def scenario():
        cursor = f.svc.cursor
        waiter = asyncio.create_task(f.svc.changes(cursor, timeout_s=5))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        f.svc.desk("a0", "login")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        got = await waiter
        assert loop.time() - t0 < 0.05
        assert [x["event"] for x in got["frames"]] == ["login"]
        empty = await f.svc.changes(got["cursor"], timeout_s=0.02)
        assert empty["frames"] == [] and empty["cursor"] == got["cursor"]
        # two pollers (two gateway processes) both wake
        p1 = asyncio.create_task(f.svc.changes(got["cursor"], 5))
        p2 = asyncio.create_task(f.svc.changes(got["cursor"], 5))
        await asyncio.sleep(0)
        f.svc.desk("a0", "ready")
        r1, r2 = await asyncio.wait_for(asyncio.gather(p1, p2), 1)
        assert r1["frames"] == r2["frames"] and r1["frames"][0]["state"] == "ready"

    asyncio.run(scenario())


# -- desk commands -------------------------------------------------------------------------------
def test_desk_commands_by_login_and_a_second_login_reattaches():
    f = Floor(1)
    out = f.svc.desk("a0", "login")
    assert out["agent"]["state"] == "not_ready" and out["cursor"] == f.svc.cursor
    f.svc.desk("a0", "ready")
    seq = f.svc.feed.seq
    again = f.svc.desk("a0", "login")                     # a desktop reconnecting: nothing changes
    assert again["agent"]["state"] == "ready" and f.svc.feed.seq == seq
    with pytest.raises(am.UnknownAgent):
        f.svc.desk("nobody", "login")
    with pytest.raises(IllegalAgentTransition):
        f.svc.desk("a0", "dispose", code="sale")
    assert f.svc.views(["a0", "nobody"])["agents"][0]["login"] == "a0"


# -- calls: screen pop and disposition -----------------------------------------------------------
STRATEGY = {"name": "s", "initial": "call", "custom_codes": ["sale", "callback"],
            "handlers": {"call": {"type": "call", "pacing": {"mode": "predictive", "settings": {"target": 0.03}},
                                  "agents": {"skills": ["sales"], "min": 1, "max": 5, "wrap_up": "30s"},
                                  "script": {"text": "Hello {first_name}, about your {plan} plan"},
                                  "results": {"default": "done"}}}}
CONTACT = {"external_id": "c1", "first_name": "Ann", "phone1": "+12125550100", "attributes": {"plan": "gold"}}


def test_a_call_pops_its_screen_and_the_disposition_is_checked_and_kept():
    f = Floor(1)
    f.svc.set_jobs([JobSpec(1, wrap_limit_s=30)])
    f.staff()
    f.svc.tick()
    cursor = f.svc.cursor
    strategy = parse_strategy(STRATEGY)
    screen = screen_pop("call-1", 1, CONTACT, strategy, "call")
    assert f.svc.reserve_many(1, ["call-1"], {"call-1": screen}) == {"call-1": f.ids[0]}
    f.svc.connect("call-1", screen)                       # popped once only
    _, got = frames(f.svc, cursor)
    assert [x["type"] for x in got] == ["state", "call", "state"]
    pop = got[1]
    assert pop["agent"] == "a0" and pop["call_id"] == "call-1" and pop["job_id"] == 1
    assert pop["script"] == {"text": "Hello Ann, about your gold plan"}
    assert pop["contact"]["plan"] == "gold" and pop["contact"]["first_name"] == "Ann"
    assert pop["codes"] == ["answer_human", "answer_machine", "fax", "invalid_number", "sale", "callback"]
    f.svc.hangup("call-1")
    with pytest.raises(DispositionError) as bad:
        f.svc.desk("a0", "dispose", code="not_a_code")
    assert bad.value.field == "code"
    with pytest.raises(DispositionError) as past:
        f.svc.desk("a0", "dispose", code="callback", callback_at=f.clock.t - timedelta(minutes=1))
    assert past.value.field == "callback_at"
    with pytest.raises(DispositionError):
        f.svc.desk("a0", "dispose", code="callback", callback_at=f.clock.t + timedelta(days=31))
    assert f.svc.view(f.ids[0])["state"] == "wrap_up"     # refused: nothing changed
    at = f.clock.t + timedelta(hours=2)
    f.svc.desk("a0", "dispose", code="callback", callback_at=at)
    assert f.svc.view(f.ids[0])["state"] == "ready"
    assert f.svc.take_dispositions(1) == []               # handed out once written
    f.svc.flush()
    taken = f.svc.take_dispositions(1)
    assert [(d["call_id"], d["code"], d["callback_at"]) for d in taken] == [("call-1", "callback", at)]
    assert f.svc.take_dispositions(1) == []


def test_preview_offer_accept_skip_and_timeout():
    f = Floor(3)
    f.svc.set_jobs([JobSpec(1, mode="preview")])
    f.staff()
    f.svc.tick()
    cursor = f.svc.cursor
    kw = {"timeout_s": 20, "on_timeout": "skip", "skip_codes": ("skipped", "wrong_person"), "owner": "m"}
    first = f.svc.preview(1, "card-1", {"contact": {"first_name": "Ann"}}, **kw)
    second = f.svc.preview(1, "card-2", {"contact": {"first_name": "Bob"}}, **kw)
    third = f.svc.preview(1, "card-3", {"contact": {"first_name": "Cy"}}, **kw)
    assert len({first, second, third}) == 3 and f.svc.preview(1, "card-4", {}) is None
    _, got = frames(f.svc, cursor)
    cards = [x for x in got if x["type"] == "preview"]
    assert [c["card_id"] for c in cards] == ["card-1", "card-2", "card-3"]
    assert cards[0]["contact"] == {"first_name": "Ann"} and cards[0]["expires_at"] == f.clock.t + timedelta(seconds=20)
    assert cards[0]["skip_codes"] == ["skipped", "wrong_person"] and cards[0]["on_timeout"] == "skip"
    login = {i: f.svc.view(i)["login"] for i in f.ids}
    f.svc.desk(login[first], "accept", card_id="card-1")
    with pytest.raises(DispositionError) as bad:
        f.svc.desk(login[second], "skip", card_id="card-2", code="nope")
    assert bad.value.field == "code"
    f.svc.desk(login[second], "skip", card_id="card-2", code="wrong_person")
    with pytest.raises(DispositionError) as bad:
        f.svc.desk(login[first], "accept", card_id="card-2")
    assert bad.value.field == "card_id"
    assert f.svc.view(second)["state"] == "ready" and f.svc.view(first)["state"] == "reserved"
    f.clock.advance(21)
    f.svc.tick()                                          # card-3 unanswered: released; card-1 accepted: held
    assert f.svc.view(third)["state"] == "ready" and f.svc.view(first)["state"] == "reserved"
    assert f.svc.take_answers(1) == {}                    # the answers are the owner's
    answers = f.svc.take_answers(1, "m")
    assert {c: (a["answer"], a["dial"], a["code"]) for c, a in answers.items()} == {
        "card-1": ("accept", True, None), "card-2": ("skip", False, "wrong_person"),
        "card-3": ("timeout", False, "timeout")}
    f.svc.connect("card-1")                               # the accepted card's call is put through
    assert f.svc.view(first)["state"] == "on_call"
    f.svc.flush()
    ends = [(t.call_id, t.event, t.reason) for t in f.db.events if t.call_id in ("card-1", "card-2", "card-3")]
    assert ("card-1", "accept", "agent") in ends and ("card-2", "release", "skipped") in ends
    assert ("card-3", "release", "timeout") in ends
    assert [e for e in ends if e[1] == "reserve"] == [(c, "reserve", "preview") for c in ("card-1", "card-2", "card-3")]


# -- jobs from the director ------------------------------------------------------------------------
def test_set_jobs_told_again_changes_nothing_and_keeps_a_supervisors_limits():
    f = Floor(2)
    f.svc.set_jobs([JobSpec(1, priority=5, max_agents=4)])
    f.staff()
    f.svc.tick()
    f.svc.set_job(1, max_agents=1, priority=9)
    f.svc.tick()
    assert f.svc.rebalance_due is False
    f.svc.set_jobs([JobSpec(1, priority=5, max_agents=4)])     # the director's next tick
    assert f.svc.rebalance_due is False
    assert f.svc.jobs[1].max_agents == 1 and f.svc.jobs[1].priority == 9
    f.svc.set_jobs([JobSpec(1, priority=6, max_agents=4)])     # the campaign changed: overrides stay
    assert not f.svc.rebalance_due and (f.svc.jobs[1].priority, f.svc.jobs[1].max_agents) == (9, 1)
    f.svc.set_jobs([JobSpec(1, priority=6, max_agents=4, min_agents=2)])   # no longer fits min 2 > max 1
    assert (f.svc.jobs[1].priority, f.svc.jobs[1].min_agents, f.svc.jobs[1].max_agents) == (6, 2, 4)
    f.svc.set_jobs([])                                    # the job ended: its limits are forgotten
    f.svc.set_jobs([JobSpec(1, priority=5, max_agents=4)])
    assert f.svc.jobs[1].max_agents == 4


def test_strategy_to_job_spec():
    spec = job_demand(7, 3, 8, parse_strategy(STRATEGY))
    assert spec == JobSpec(7, 8, 1, 5, frozenset({"sales"}), "predictive", 30.0, 3)
    plain = {"name": "n", "initial": "call", "handlers": {"call": {"type": "call", "pacing": {"max_concurrent": 4}},
                                                          "sms": {"type": "sms", "message": "x",
                                                                  "pacing": {"max_concurrent": 2}}}}
    assert job_demand(8, 3, 42, parse_strategy(plain)) == Demand(8, "ports", 10, 0, 4)   # calls hold ports, SMS none
    changed = {"call": {"max_concurrent": 7}}                            # the job's run-time pacing
    assert job_demand(8, 3, 5, parse_strategy(plain), changed) == Demand(8, "ports", 5, 0, 7)
    sms = {"name": "n", "initial": "sms", "handlers": {"sms": {"type": "sms", "message": "x"}}}
    assert job_demand(8, 3, 5, parse_strategy(sms)) == Demand(8, "ports", 5, 0, 0)
    specs, ports = job_demands([{"id": 7, "campaign_id": 3, "priority": 8, "strategy_id": 1},
                                {"id": 8, "campaign_id": 4, "priority": 5, "strategy_id": 2, "pacing": changed},
                                {"id": 9, "campaign_id": 5, "priority": 5, "strategy_id": 99}],
                               {1: parse_strategy(STRATEGY), 2: parse_strategy(plain)})
    assert [s.job_id for s in specs] == [7] and [(d.job_id, d.maximum) for d in ports] == [(8, 7)]


# -- strategy: pacing mode, agents and scripts ---------------------------------------------------
def faults(doc) -> dict[str, str]:
    with pytest.raises(StrategyError) as info:
        parse_strategy(doc)
    return {e["path"]: e["message"] for e in info.value.errors}


def test_agent_groups_from_the_strategy_to_the_job_spec():
    grouped = {**STRATEGY, "handlers": {"call": {**STRATEGY["handlers"]["call"],
                                                 "agents": {"skills": ["sales"], "groups": ["gold", "team-2"]}}}}
    spec = job_demand(7, 3, 8, parse_strategy(grouped))
    assert spec.groups == frozenset({"gold", "team-2"}) and spec.skills == frozenset({"sales"})
    assert JobSpec(**spec.as_dict()) == spec                 # as the fleet sends it to the Agent Manager
    assert job_demand(7, 3, 8, parse_strategy(STRATEGY)).groups == frozenset()      # none named: any agent
    for groups, fault in ((["bad group"], "agent group 'bad group' must match"),
                          ([f"g{i}" for i in range(101)], "at most 100")):
        bad = {**STRATEGY, "handlers": {"call": {**STRATEGY["handlers"]["call"], "agents": {"groups": groups}}}}
        found = faults(bad)
        assert list(found) == ["handlers.call.agents.groups"] and fault in found["handlers.call.agents.groups"]


def test_pacing_mode_defaults_to_time_based_and_is_validated():
    s = parse_strategy({"name": "t", "initial": "c", "handlers": {"c": {"type": "call"}}})
    assert s.handlers["c"].pacing.mode == "time_based" and not s.handlers["c"].agent_based
    got = faults({"name": "t", "initial": "c", "handlers": {
        "c": {"type": "call", "pacing": {"mode": "psychic"}},
        "d": {"type": "call", "pacing": {"mode": "predictive", "settings": {"target": 0.9}}},
        "e": {"type": "sms", "message": "x", "pacing": {"mode": "progressive"}},
        "f": {"type": "call", "pacing": {"settings": {"ratio": 2}}},
        "g": {"type": "call", "script": {"text": "hi"}},
        "h": {"type": "call", "pacing": {"mode": "progressive"}, "script": {"text": "a", "url": "http://x"}},
        "i": {"type": "call", "pacing": {"mode": "progressive"}, "script": {"url": "ftp://x/{first_name}"},
              "agents": {"min": 3, "max": 2}},
        "j": {"type": "call", "pacing": {"mode": "preview"}, "script": {"text": "Hi {first_name!r}"},
              "agents": {"skills": ["bad skill"], "wrap_up": "2h"}}}})
    assert "psychic" in got["handlers.c.pacing.mode"] or "Input should be" in got["handlers.c.pacing.mode"]
    assert "settings.target" in got["handlers.d.pacing"]
    assert "only call handlers" in got["handlers.e.pacing.mode"]
    assert "takes no settings" in got["handlers.f.pacing"]
    assert "agent-based pacing mode" in got["handlers.g.script"]
    assert "either text or url" in got["handlers.h.script"]
    assert "http://" in got["handlers.i.script.url"] and "min 3 > max 2" in got["handlers.i.agents"]
    assert "bare attribute" in got["handlers.j.script.text"]
    assert "bad skill" in got["handlers.j.agents.skills"] and "wrap-up" in got["handlers.j.agents.wrap_up"]


def test_a_script_naming_an_attribute_the_list_lacks_is_refused():
    with pytest.raises(StrategyError) as info:
        parse_strategy(STRATEGY, attributes=["region"])
    assert {e["path"] for e in info.value.errors} == {"handlers.call.script.text"}
    parse_strategy(STRATEGY, attributes=["plan"])


def test_scripts_render_text_and_urls_and_never_fail_on_a_missing_attribute():
    assert render_script({"text": "Hi {first_name} {nick}"}, CONTACT) == {"text": "Hi Ann "}
    url = render_script({"url": "https://crm.example/c?id={external_id}&n={first_name}&p={plan}"},
                        {**CONTACT, "first_name": "Ann & Bo/b"})
    assert url == {"url": "https://crm.example/c?id=c1&n=Ann%20%26%20Bo%2Fb&p=gold"}
    assert render_script(None, CONTACT) is None

"""The agent's disposition ends the call's after-call work: the Agent Manager reports each
disposition with the agent's own timing (talk: connect to hangup; wrap: hangup to disposition),
a Campaign Manager's pacers that pace by agents learn the wrap times from it (and a new one
starts from its campaign's recent ones), and a job's occupancy counts the wrap-up as busy time
until the disposition."""
import asyncio
from datetime import timedelta

import pytest

from pom_actors.core.agents.attachment import JobSpec
from pom_actors.core.pacing.window import Tally, warm_settings
from pom_actors.core.reports import occupancy
from tests.unit.test_agent_manager_service import Floor
from tests.unit.test_manager_pacing import Job, cycle


def test_a_disposition_reports_the_agents_talk_and_wrap_seconds():
    f = Floor(1)
    f.svc.set_jobs([JobSpec(1, wrap_limit_s=120)])
    f.staff()
    f.svc.tick()
    f.svc.reserve_many(1, ["c1"])
    f.clock.advance(1)
    f.svc.connect("c1")
    f.clock.advance(42)
    f.svc.hangup("c1")
    f.clock.advance(17)
    f.svc.dispose(f.ids[0], "answer_human")
    f.svc.flush()
    [d] = f.svc.take_dispositions(1)
    assert (d["call_id"], d["talk_s"], d["wrap_s"]) == ("c1", 42.0, 17.0)
    assert f.svc.talked == {}                              # nothing kept once told


def test_the_pacer_learns_wrap_times_from_the_dispositions():
    job = Job("{mode: predictive, settings: {prior_wrap_s: 5}}", agents=2)
    svc = job.manager()
    job.give(svc)
    cycle(svc)
    job.clock.advance(5)                                   # answered: bridged onto both agents
    cycle(svc)
    job.clock.advance(60)                                  # the calls end: the agents wrap up
    cycle(svc)
    floor = job.floor
    floor.clock.advance(30)                                # the agent's clock: 30 s of after-call work
    for agent in floor.ids:
        floor.svc.dispose(agent, "answer_human")
    floor.svc.flush()
    wrap = svc.pacers["call"].pacer.wrap
    before = len(wrap._xs)
    cycle(svc)
    assert len(wrap._xs) == before + 2 and list(wrap._xs)[-2:] == [30.0, 30.0]
    assert svc.stats["dispositions"] == 2 and floor.svc.take_dispositions(job.job_id) == []
    asyncio.run(svc.cycle())                               # taken once: not learnt twice
    assert len(wrap._xs) == before + 2


def test_occupancy_is_on_call_and_wrap_up_until_the_disposition_over_logged_in():
    assert occupancy({"on_call": 30.0, "wrap_up": 15.0, "logged_in": 90.0}) == 0.5
    assert occupancy({"on_call": 30.0, "logged_in": 60.0}) == 0.5
    assert occupancy({"logged_in": 0.0}) is None


def test_a_new_pacer_starts_from_its_campaigns_recent_wrap_ups():
    recent = Tally(dials=200, live=50, wrap_s=600.0, wrapped=20)
    assert warm_settings("predictive", {}, recent)["prior_wrap_s"] == 30.0
    assert warm_settings("predictive", {"prior_wrap_s": 9.0}, recent)["prior_wrap_s"] == 9.0   # the strategy's own
    assert "prior_wrap_s" not in warm_settings("predictive", {}, Tally(dials=200, live=50, wrap_s=570.0, wrapped=19))
    job = Job("{mode: predictive}", agents=2)
    job.seed(600, dials=200, live=50, wrap_s=900.0, wrapped=30)
    assert job.manager().pacers["call"].config.prior_wrap_s == 30.0


def test_a_disposition_becomes_the_attempts_code_and_a_call_back_schedules_the_contact_once():
    job = Job("{mode: predictive, settings: {prior_wrap_s: 5}}", agents=2)
    svc = job.manager()
    job.give(svc)
    cycle(svc)
    job.clock.advance(5)
    cycle(svc)
    job.clock.advance(60)
    cycle(svc)
    floor = job.floor
    calls = {a: floor.svc.agents[a].call_id for a in floor.ids}
    codes = {a: sorted(set(floor.svc.screens[calls[a]]["codes"]) - {"answer_human"}) for a in floor.ids}
    first, second = floor.ids
    floor.clock.advance((job.clock.now() - floor.clock.now()).total_seconds())   # one business clock
    back = job.clock.now() + timedelta(hours=1)
    floor.svc.dispose(first, codes[first][0])
    floor.svc.dispose(second, codes[second][0], back)
    floor.svc.flush()
    taken = [dict(d) for d in floor.svc.dispositions]
    cycle(svc)
    ledger = {f"{a.work_item_id}.{a.attempt_no}": a for a in job.db.attempts}
    assert ledger[calls[first]].code == codes[first][0] and ledger[calls[second]].code == codes[second][0]
    assert ledger[calls[first]].details["code_set"]["from"] == "answer_human"
    item = job.db.items[int(calls[second].split(".")[0])]
    assert (item["state"], item["next_at"]) == ("scheduled", back)
    assert svc.stats["disposals_applied"] == 2 and svc.stats["disposals_called_back"] == 1
    job.clock.advance(1800)
    cycle(svc)                                             # not dialled before its call-back
    assert item["state"] == "scheduled"
    asyncio.run(svc._dispose(taken))                       # a retried take: the same, nothing twice
    assert (item["state"], item["next_at"]) == ("scheduled", back) and svc.stats["disposals_called_back"] == 1
    assert ledger[calls[first]].details["code_set"]["from"] == "answer_human"
    job.clock.advance(1800)
    cycle(svc)                                             # called back at its time, once
    assert item["state"] == "in_flight" and item["attempts"] == int(calls[second].split(".")[1]) + 1


def test_dispositions_wait_while_the_database_is_down():
    job = Job("{mode: predictive, settings: {prior_wrap_s: 5}}", agents=2)
    svc = job.manager()
    taken = [{"agent_id": 1, "call_id": "1.1", "job_id": job.job_id, "code": "sale", "at": job.clock.now(),
              "callback_at": None}]
    job.db.down = True
    with pytest.raises(Exception):
        asyncio.run(svc._dispose(taken))
    assert list(svc.undisposed) == ["1.1"]                 # kept for the next cycle
    job.db.down = False
    asyncio.run(svc._dispose([]))
    assert svc.undisposed == {} and svc.stats["disposals_refused"] == 1   # "1.1" was never placed


def test_a_disposition_handed_out_again_teaches_the_pacer_nothing_more():
    """One the Agent Manager hands out `again` (after its restart, or its taker stopped before
    writing it) still reaches the ledger, but its wrap-up was learnt the first time."""
    job = Job("{mode: predictive, settings: {prior_wrap_s: 5}}", agents=2)
    svc = job.manager()
    events = svc.events["call"]
    d = {"agent_id": 1, "call_id": "card-1", "job_id": job.job_id, "code": "sale", "at": job.clock.now(),
         "wrap_s": 9.0}
    before = len(events)
    asyncio.run(svc._wrapped([{**d, "again": True}]))
    assert len(events) == before
    asyncio.run(svc._wrapped([d]))
    assert len(events) == before + 1

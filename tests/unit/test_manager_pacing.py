"""Pacing in a Campaign Manager without Ray or a database: it paces an agent-based handler by
its share of the job's agents (fetched now and then, never per cycle), shares a job's agents
with its other managers, persists the campaign's rule window in the settling transaction and
reads it back (its length and rule change decisions), starts warm from the campaign's recent
outcomes, and raises the job's alarm when AMD false positives alone exceed the target."""
import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from pom_actors.config import Settings
from pom_actors.core.agents.attachment import JobSpec
from pom_actors.core.clock import ManualClock
from pom_actors.core.pacing.snapshot import EventKind, PacerEvent
from pom_actors.core.pacing.window import Tally, bucket_of
from pom_actors.core.strategy import parse_strategy
from pom_actors.media.gateway import Gateway, GatewayConfig
from pom_actors.media.voice_sim import VoiceProfile
from pom_actors.names import manager_name, new_holder
from pom_actors.services.manager import ManagerService
from pom_actors.services.rule_engine import RuleService
from tests.unit.fakes import (FakeDatabase, FakeRuleStore, FakeWorkStore, LocalAgentLegs, LocalGateways,
                              LocalRules)
from tests.unit.test_agent_manager_service import Floor

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)     # a Wednesday afternoon in New York
CONTACTS = [{"external_id": str(i), "phone1": f"+1212555{i:04d}", "timezones": ["America/New_York"],
             "attributes": {}} for i in range(200)]
LONG = VoiceProfile(answer_human=1, answer_machine=0, busy=0, no_answer=0, invalid_number=0, fax=0,
                    network_refusal=0, ring_s={"dist": "fixed", "value": 5.0},
                    talk_s={"dist": "fixed", "value": 60.0})


def strategy(pacing: str):
    return parse_strategy(f"""
name: live
initial: call
handlers:
  call:
    type: call
    addresses: [phone1]
    pacing: {pacing}
    results: {{default: done}}
""")


class Agents:
    """The Agent Manager as the manager sees it: a service over fake agents, asked in batches."""

    def __init__(self, floor: Floor | None):
        self.floor, self.asked = floor, 0

    async def snapshot(self, job_id, index, managers):
        self.asked += 1
        return None if self.floor is None else self.floor.svc.snapshot(job_id, index=index, managers=managers)

    async def reserve(self, job_id, call_ids, screens):
        return {} if self.floor is None else self.floor.svc.reserve_many(job_id, call_ids, screens)

    async def settle_calls(self, connect, release, hangup):
        return None if self.floor is None else self.floor.svc.settle_calls(connect, release, hangup)

    async def take_dispositions(self, job_id):
        return None if self.floor is None else self.floor.svc.take_dispositions(job_id)


class Job:
    def __init__(self, pacing: str, agents: int = 4, voice: VoiceProfile = LONG, managers: int = 1):
        self.clock = ManualClock(T0)
        self.db = FakeDatabase(strategy(pacing), CONTACTS)
        self.db.add_campaign()
        self.job_id = self.db.create_job(1, 2, managers, T0)
        self.db.jobs[self.job_id]["state"] = "running"
        self.floor = Floor(agents)
        self.floor.svc.set_jobs([JobSpec(self.job_id)])
        self.floor.staff()
        self.floor.svc.tick()
        self.agents = Agents(self.floor)
        self.gateways = LocalGateways(Gateway(GatewayConfig(name="gw", voice=voice), self.clock))
        self.floor.svc.legs = LocalAgentLegs(self.gateways.live)
        asyncio.run(self.floor.svc.hold_legs())           # the agents' nailed sessions, held at the gateway
        self.rules = LocalRules(RuleService(lambda: FakeRuleStore(), self.clock))
        self.managers = managers

    def manager(self, index: int = 0, agents=None) -> ManagerService:
        name = manager_name(self.job_id, index)
        holder = new_holder(name)
        svc = ManagerService(Settings(lease_ttl_s=6.0, batch_size=1000), job_id=self.job_id, name=name,
                             holder=holder, managers=self.managers,
                             open_store=lambda: FakeWorkStore(self.db, self.job_id, holder), rules=self.rules,
                             gateways=self.gateways, clock=self.clock, agents=agents or self.agents, index=index)
        svc.draining = False
        return svc

    def give(self, svc: ManagerService, shards=(0, 1)) -> None:
        self.db.grant(self.job_id, {s: svc.holder for s in shards}, 6.0)
        svc.refresh()

    def in_flight(self) -> int:
        return len(self.db.job_items(self.job_id, "in_flight"))

    def seed(self, ago_s: float, **counts) -> None:
        """Outcomes of earlier jobs of the campaign, `ago_s` seconds before T0."""
        self.db.pacing[(1, bucket_of(T0 - timedelta(seconds=ago_s)))] = Tally(**counts)


def cycle(svc: ManagerService) -> None:
    svc.fetched = svc.counted = -float("inf")          # the periodic reads are due at every step here
    asyncio.run(svc.cycle())


# -- the manager ------------------------------------------------------------------------------------
def test_a_manager_dials_by_the_ready_agents_it_fetched_and_never_beyond():
    job = Job("{mode: progressive}", agents=3)
    svc = job.manager()
    job.give(svc)
    cycle(svc)
    assert job.in_flight() == 3 and job.agents.asked == 1
    job.clock.advance(5)                                 # answered: bridged onto the 3 agents
    cycle(svc)
    assert {a["state"] for a in job.floor.svc.list_agents()} == {"on_call"}
    for _ in range(5):                                  # the calls talk 60 s: no more lines meanwhile
        job.clock.advance(10)
        cycle(svc)
        assert job.in_flight() == 3
    job.floor.svc.not_ready(job.floor.ids[0], "break")
    job.clock.advance(60)                                # the first calls end: the agents wrap up
    cycle(svc)
    assert {a["state"] for a in job.floor.svc.list_agents()} == {"wrap_up"}
    for agent in job.floor.ids:                         # disposed: 2 ready agents, 2 lines
        job.floor.svc.dispose(agent, "answer_human")
    cycle(svc)
    assert job.in_flight() == 2
    figures = svc.status()["pacing"]["call"]
    assert figures["applied"] == "progressive" and figures["ready"] == 2 and figures["dials"] == 2


def test_the_agents_are_fetched_periodically_not_per_cycle(monkeypatch):
    monkeypatch.setattr("pom_actors.services.manager.AGENT_REFRESH_S", 60.0)     # however slow the machine
    job = Job("{mode: progressive}", agents=3)
    svc = job.manager()
    job.give(svc)
    for _ in range(5):
        asyncio.run(svc.cycle())
    assert job.agents.asked == 1


def test_agents_a_manager_put_calls_through_to_are_busy_before_the_next_fetch(monkeypatch):
    monkeypatch.setattr("pom_actors.services.manager.AGENT_REFRESH_S", 60.0)     # no fetch after the first
    job = Job("{mode: progressive}", agents=3)
    svc = job.manager()
    job.give(svc)
    asyncio.run(svc.cycle())
    assert job.in_flight() == 3 and job.agents.asked == 1
    job.clock.advance(5)                                 # answered and put through: no dial in flight
    asyncio.run(svc.cycle())
    asyncio.run(svc.cycle())
    assert {a["state"] for a in job.floor.svc.list_agents()} == {"on_call"} and job.agents.asked == 1
    figures = svc.status()["pacing"]["call"]
    assert job.in_flight() == 3 and figures["ready"] == 0 and figures["in_flight"] == 0 and figures["lines"] == 3


def test_an_answer_counts_for_the_pacer_from_its_notice_not_a_talk_later():
    # The store counts a call in the rule window when it settles, a whole talk after its answer
    # (an abandon at once): the pacer counts the answer, and learns the live result, at the notice.
    job = Job("{mode: progressive}", agents=3)
    svc = job.manager()
    job.give(svc)
    pacer = svc.pacers["call"].pacer
    seen, observe = [], pacer.observe
    pacer.observe = lambda events: (seen.extend(events), observe(events))
    cycle(svc)
    job.clock.advance(5)                                 # answered and put through: 60 s of talk to come
    cycle(svc)
    cycle(svc)
    assert {a["state"] for a in job.floor.svc.list_agents()} == {"on_call"}
    assert svc.status()["pacing"]["call"]["live_answered"] == 3
    assert seen == [PacerEvent(EventKind.LIVE, 5.0)] * 3
    job.clock.advance(60)                                # ended and settled: the window counts them
    for _ in range(3):
        cycle(svc)
    assert svc.status()["pacing"]["call"]["live_answered"] == 3 and svc.stats["settled"] == 3
    assert [e.kind for e in seen] == [EventKind.LIVE] * 3 + [EventKind.TALK_END] * 3


def test_a_call_put_through_to_another_shares_agent_stays_a_line_of_its_manager(monkeypatch):
    # The Agent Manager reserves any ready agent of the job: a manager's call may go to an agent
    # of the other manager's share, which that one still shows ready until its next fetch.
    monkeypatch.setattr("pom_actors.services.manager.AGENT_REFRESH_S", 60.0)     # no fetch after the first
    job = Job("{mode: progressive}", agents=3, managers=2)
    a, b = job.manager(0), job.manager(1)
    job.give(a, [0])
    job.give(b, [1])
    for svc in (a, b):
        asyncio.run(svc.cycle())
    assert job.in_flight() == 3
    job.clock.advance(5)                                 # all answered and put through
    for _ in range(2):
        for svc in (a, b):
            asyncio.run(svc.cycle())
    assert {x["state"] for x in job.floor.svc.list_agents()} == {"on_call"}
    assert job.in_flight() == 3                          # no line for an agent already on a call


def test_managers_of_one_job_share_its_agents_without_over_dialling():
    job = Job("{mode: progressive}", agents=5, managers=2)
    a, b = job.manager(0), job.manager(1)
    job.give(a, [0])
    job.give(b, [1])
    cycle(a)
    cycle(b)
    cycle(a)
    cycle(b)
    assert job.in_flight() == 5                          # 3 + 2 lines: one per ready agent, not 5 + 5
    shares = [job.floor.svc.snapshot(job.job_id, index=i, managers=2).ready_ids for i in (0, 1)]
    assert not set(shares[0]) & set(shares[1]) and len(shares[0] + shares[1]) == 5
    with pytest.raises(ValueError):
        job.floor.svc.snapshot(job.job_id, index=2, managers=2)


def test_no_agent_manager_answer_no_dial():
    job = Job("{mode: progressive}", agents=3)
    svc = job.manager(agents=Agents(None))
    job.give(svc)
    cycle(svc)
    assert job.in_flight() == 0 and svc.status()["pacing"]["call"]["dials"] == 0


def test_settled_calls_are_counted_in_the_campaigns_window_in_the_same_transaction():
    job = Job("{mode: progressive}", agents=3, voice=VoiceProfile(instant=True, seed=3))
    svc = job.manager()
    job.give(svc)
    cycle(svc)
    cycle(svc)
    total = sum(job.db.pacing.values(), Tally())
    codes = [a.code for a in job.db.attempts]
    assert total.dials == len(codes) == 3 and total.live == codes.count("answer_human")
    assert total.machine == codes.count("answer_machine")
    cycle(svc)
    assert svc.status()["pacing"]["call"]["live_answered"] == total.live


@pytest.mark.parametrize("pacing, window_s, guarded", [
    ("{mode: predictive, settings: {target: 0.03}}", 30 * 86400, True),          # US: 30 days see the old abandons
    ("{mode: predictive, settings: {target: 0.03, rule: uk_24h}}", 86400, False),   # UK: 24 hours do not
    ("{mode: predictive, settings: {target: 0.03, window_s: 7200}}", 7200, False),  # a 2-hour window does not
])
def test_the_rule_and_its_window_change_the_decision(pacing, window_s, guarded):
    job = Job(pacing, agents=10)
    job.seed(3 * 86400, dials=4000, live=1000, abandoned=60)                  # 6 % three days ago
    job.seed(3600, dials=4000, live=1000, abandoned=0)
    svc = job.manager()
    job.give(svc)
    cycle(svc)
    figures = svc.status()["pacing"]["call"]
    assert ("safe dials only" in figures["reason"]) is guarded
    assert (figures["dials"] == 10) is guarded                                # safe: one per ready agent
    assert figures["live_answered"] == (2000 if guarded else 1000)
    assert figures["window_s"] == window_s


def test_a_new_job_starts_warm_from_its_campaigns_recent_outcomes():
    cold = Job("{mode: predictive}", agents=10)
    svc = cold.manager()
    cold.give(svc)
    cycle(svc)
    assert not svc.pacers["call"].figures["warm_start"] and svc.status()["pacing"]["call"]["dials"] == 10
    warm = Job("{mode: predictive}", agents=10)
    warm.seed(3600, dials=4000, live=1000, abandoned=10, answer_s=1000 * 7.0, talk_s=900 * 100.0, talked=900)
    svc = warm.manager()
    warm.give(svc)
    cycle(svc)
    pacer = svc.pacers["call"]
    assert pacer.figures["warm_start"] and pacer.config.prior_hit_rate == 0.25 and pacer.config.prior_answer_s == 7.0
    assert pacer.config.ring_timeout_s == 15.0                                # the handler's (default) ring timeout
    assert svc.status()["pacing"]["call"]["dials"] > 10                       # dials ahead from the first tick


def test_amd_false_positives_over_the_target_raise_the_jobs_alarm_and_stop_it():
    job = Job("{mode: predictive, settings: {rule: uk_24h, amd_false_positive_share: 0.05}}", agents=5)
    job.seed(600, dials=400, live=100, machine=80)
    svc = job.manager()
    job.give(svc)
    cycle(svc)
    source = f"pacing.amd@job-{job.job_id}"
    assert job.in_flight() == 0 and "AMD false positives alone" in job.db.alarms[source]
    assert svc.status()["pacing"]["call"]["alarm"] and svc.status()["pacing"]["call"]["abandon_rate"] == 0.04
    job.seed(600, dials=400, live=300, machine=80)                            # more people: under the target
    cycle(svc)
    assert job.db.alarms[source] is None and job.in_flight() >= 5             # dialling again, ahead

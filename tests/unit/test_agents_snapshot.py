"""The pacer's snapshot built from one job's agent states."""
from datetime import datetime, timedelta, timezone

from pom_actors.core.agents.snapshot import pacer_snapshot
from pom_actors.core.agents.state import Agent, AgentState
from pom_actors.core.pacing import RuleCounters, make_pacer

S = AgentState
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def ago(s: float) -> datetime:
    return T0 - timedelta(seconds=s)


AGENTS = [Agent(1, "a", state=S.READY, since=ago(5), job_id=1),
          Agent(2, "b", state=S.READY, since=ago(30), job_id=1),
          Agent(3, "c", state=S.ON_CALL, since=ago(90), job_id=1, call_id="x"),
          Agent(4, "d", state=S.RESERVED, since=ago(1), job_id=1, call_id="y"),
          Agent(5, "e", state=S.WRAP_UP, since=ago(12), job_id=1, call_id="z"),
          Agent(6, "f", state=S.NOT_READY, since=ago(3), job_id=1, reason="lunch"),
          Agent(7, "g", state=S.READY, since=ago(8), job_id=1)]


def test_states_map_onto_the_pacer_fields():
    snap = pacer_snapshot(AGENTS, T0, offered={7}, dialling=(1.0, 2.0), waiting=(0.5,),
                          counters=RuleCounters(100, 2), ports_cap=10)
    assert snap.ready == (30.0, 5.0) and snap.ready_ids == ("2", "1")       # longest waiting first
    assert snap.talking == (1.0, 90.0)                                        # reserved counts as talking
    assert snap.wrapping == (12.0,)
    assert snap.reserved == 1                                                 # held by a preview offer
    assert snap.staffed == 5 and snap.in_flight == 3 and snap.port_room() == 5
    assert snap.counters == RuleCounters(100, 2)


def test_a_pacer_decides_from_it():
    snap = pacer_snapshot(AGENTS, T0)
    decision = make_pacer({"mode": "progressive", "ratio": 1.0}).decide(snap)
    assert decision.dials == 3                                                # three ready agents, nothing in flight


def test_no_agents_no_staff():
    snap = pacer_snapshot([], T0)
    assert snap.staffed == 0 and snap.ready == ()

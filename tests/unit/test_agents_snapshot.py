"""The pacer's snapshot read from the roster of one job's agents."""
from datetime import datetime, timedelta, timezone

from pom_actors.core.agents.snapshot import Roster
from pom_actors.core.agents.state import Agent, AgentState
from pom_actors.core.pacing import RuleCounters, make_pacer

S = AgentState
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def ago(s: float) -> datetime:
    return T0 - timedelta(seconds=s)


def agents() -> list[Agent]:
    return [Agent(1, "a", state=S.READY, since=ago(5), job_id=1),
            Agent(2, "b", state=S.READY, since=ago(30), job_id=1),
            Agent(3, "c", state=S.ON_CALL, since=ago(90), job_id=1, call_id="x"),
            Agent(4, "d", state=S.RESERVED, since=ago(1), job_id=1, call_id="y"),
            Agent(5, "e", state=S.WRAP_UP, since=ago(12), job_id=1, call_id="z"),
            Agent(6, "f", state=S.NOT_READY, since=ago(3), job_id=1, reason="lunch"),
            Agent(7, "g", state=S.READY, since=ago(8), job_id=1),
            Agent(8, "h", state=S.READY, since=ago(50), job_id=2),
            Agent(9, "i", state=S.READY, since=ago(60))]                   # attached to no job


def roster_of(floor: list[Agent]) -> Roster:
    roster = Roster()
    for a in floor:
        roster.place(a)
    return roster


def test_states_map_onto_the_pacer_fields():
    snap = roster_of(agents()).snapshot(1, T0, dialling=(1.0, 2.0), waiting=(0.5,),
                                        counters=RuleCounters(100, 2), ports_cap=10)
    assert snap.ready == (30.0, 8.0, 5.0) and snap.ready_ids == ("2", "7", "1")   # longest waiting first
    assert snap.talking == (1.0, 90.0)                                        # reserved counts as talking
    assert snap.wrapping == (12.0,)
    assert snap.staffed == 6 and snap.in_flight == 3 and snap.port_room() == 5
    assert snap.counters == RuleCounters(100, 2)


def test_a_share_counts_only_its_agents():
    snap = roster_of(agents()).snapshot(1, T0, share={1, 3, 5})
    assert snap.ready == (5.0,) and snap.ready_ids == ("1",) and snap.talking == (90.0,) and snap.wrapping == (12.0,)


def test_transitions_and_moves_keep_it_true():
    floor = agents()
    roster = roster_of(floor)
    a, b, g = floor[0], floor[1], floor[6]
    assert roster.first_ready(1) == 2
    b.state, b.since = S.RESERVED, ago(0.5)                                  # the head is reserved
    roster.place(b)
    assert roster.first_ready(1) == 7
    a.job_id = 2                                                             # moved, ready since 5 s
    roster.place(a)
    g.state, g.since = S.LOGGED_OUT, T0
    roster.place(g)
    assert roster.first_ready(1) is None and roster.first_ready(2) == 8
    snap = roster.snapshot(2, T0)
    assert snap.ready_ids == ("8", "1") and snap.ready == (50.0, 5.0)
    assert roster.snapshot(1, T0).talking == (0.5, 1.0, 90.0)


def test_an_older_agent_placed_later_is_read_in_its_place():
    """A ready agent attached to the job with an older `since` waits longer than those before it."""
    floor = [Agent(i, str(i), state=S.READY, since=ago(s), job_id=1) for i, s in ((1, 5), (2, 3), (3, 40), (4, 1))]
    roster = roster_of(floor)
    assert roster.snapshot(1, T0).ready_ids == ("3", "1", "2", "4")
    assert roster.first_ready(1) == 3


def test_a_future_since_is_age_zero():
    roster = roster_of([Agent(1, "a", state=S.READY, since=T0 + timedelta(seconds=3), job_id=1),
                        Agent(2, "b", state=S.WRAP_UP, since=None, job_id=1)])
    snap = roster.snapshot(1, T0)
    assert snap.ready == (0.0,) and snap.wrapping == (0.0,)


def test_a_pacer_decides_from_it():
    snap = roster_of(agents()).snapshot(1, T0)
    decision = make_pacer({"mode": "progressive", "ratio": 1.0}).decide(snap)
    assert decision.dials == 3                                                # three ready agents, nothing in flight


def test_no_agents_no_staff():
    snap = Roster().snapshot(1, T0)
    assert snap.staffed == 0 and snap.ready == ()
    roster = roster_of(agents())
    for a in agents():
        a.state = S.LOGGED_OUT
        roster.place(a)
    assert roster.jobs == {} and roster.where == {}                          # nothing kept for a job with nobody

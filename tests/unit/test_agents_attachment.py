"""Attachment of agents to jobs: skills, agent groups, priority shares, min/max and license caps; the
fewest moves; agents on a call move only after it; pins; planning twice changes nothing."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pom_actors.core.agents.attachment import (AttachmentError, JobSpec, Move, Seat, check_move, plan,
                                               with_limits)


def seats(n, skills=("sales",), job=None, busy=False, start=1, groups=()):
    return [Seat(i, frozenset(skills), job, busy, frozenset(groups)) for i in range(start, start + n)]


def apply(seat_list, p):
    moved = {m.agent_id: m.to_job for m in p.moves}
    return [Seat(s.agent_id, s.skills, moved.get(s.agent_id, s.job_id), s.busy, s.groups) for s in seat_list]


def counts(seat_list):
    out = {}
    for s in seat_list:
        out[s.job_id] = out.get(s.job_id, 0) + 1
    return out


def test_free_agents_are_shared_by_priority():
    jobs = [JobSpec(1, priority=10), JobSpec(2, priority=5)]
    p = plan(jobs, seats(9))
    assert p.targets == {1: 6, 2: 3}
    assert counts(apply(seats(9), p)) == {1: 6, 2: 3}
    assert not p.pending


def test_skills_decide_eligibility():
    jobs = [JobSpec(1, priority=10, skills=frozenset({"spanish"})), JobSpec(2, priority=1)]
    s = seats(2, ("sales", "spanish")) + seats(4, ("sales",), start=3)
    after = apply(s, plan(jobs, s))
    assert {x.agent_id for x in after if x.job_id == 1} == {1, 2}
    assert counts(after) == {1: 2, 2: 4}


def test_groups_decide_eligibility_with_skills():
    """A job naming groups takes only agents in at least one of them (and with its skills);
    a job naming none takes any agent."""
    jobs = [JobSpec(1, priority=10, groups=frozenset({"gold", "silver"})),
            JobSpec(2, priority=1, min_agents=1, skills=frozenset({"spanish"}), groups=frozenset({"gold"}))]
    s = (seats(2, groups=("gold",)) + seats(2, groups=("silver", "x"), start=3) + seats(2, start=5)
         + seats(1, ("sales", "spanish"), groups=("gold",), start=7) + seats(1, ("spanish",), groups=("x",), start=8))
    p = plan(jobs, s)
    after = {x.agent_id: x.job_id for x in apply(s, p)}
    assert after == {1: 1, 2: 1, 3: 1, 4: 1, 5: None, 6: None, 7: 2, 8: None}
    assert p.targets == {1: 4, 2: 1}
    assert plan([JobSpec(3)], s).targets == {3: 8}                # no groups named: any agent


def test_groups_with_priority_minimum_and_maximum():
    """Shares, minimums and maximums count only the agents of the groups."""
    jobs = [JobSpec(1, priority=10, max_agents=2, groups=frozenset({"a"})),
            JobSpec(2, priority=1, min_agents=3, groups=frozenset({"a", "b"})), JobSpec(3, priority=5)]
    s = seats(4, groups=("a",)) + seats(2, groups=("b",), start=5) + seats(3, start=7)
    after = apply(s, plan(jobs, s))
    c = counts(after)
    assert c == {1: 2, 2: 3, 3: 4}                 # job 2's minimum, job 1's maximum, shares for the rest
    assert {7, 8, 9} <= {x.agent_id for x in after if x.job_id == 3}         # the group-less agents
    assert all(x.agent_id <= 4 for x in after if x.job_id == 1)
    assert all(x.agent_id <= 6 for x in after if x.job_id == 2)


def test_an_agent_leaving_the_group_is_detached_after_its_call():
    jobs = [JobSpec(1, groups=frozenset({"gold"}))]
    s = seats(2, job=1, groups=("gold",)) + seats(1, job=1, busy=True, groups=("silver",), start=3) \
        + seats(1, job=1, groups=(), start=4)
    p = plan(jobs, s)
    assert p.moves == (Move(4, 1, None),) and p.pending == {3: None}
    moved = plan(jobs + [JobSpec(2, groups=frozenset({"silver"}))], s)     # or moved to a job it fits
    assert moved.pending == {3: 2} and Move(4, 1, None) in moved.moves


def test_a_pin_holds_only_while_the_agent_is_eligible():
    jobs = [JobSpec(1, groups=frozenset({"gold"})), JobSpec(2)]
    s = seats(1, job=1, groups=("gold",)) + seats(1, job=1, groups=("silver",), start=2)
    p = plan(jobs, s, pins={1: 1, 2: 1})
    assert p.moves == (Move(2, 1, 2),)


def test_minimums_come_first_and_maximum_and_license_cap():
    jobs = [JobSpec(1, priority=10, max_agents=2), JobSpec(2, priority=1, min_agents=3), JobSpec(3, priority=5)]
    p = plan(jobs, seats(10), grants={3: 1})
    after = apply(seats(10), p)
    assert counts(after) == {1: 2, 2: 7, 3: 1}


def test_an_agent_nobody_can_use_stays_unattached():
    jobs = [JobSpec(1, skills=frozenset({"french"}))]
    p = plan(jobs, seats(2))
    assert p.moves == () and p.targets == {1: 0}


def test_a_new_job_takes_its_share_with_the_fewest_moves():
    s = seats(10, job=1)
    jobs = [JobSpec(1, priority=5), JobSpec(2, priority=5)]
    p = plan(jobs, s)
    assert len(p.moves) == 5 and all(m.from_job == 1 and m.to_job == 2 for m in p.moves)
    after = apply(s, p)
    assert plan(jobs, after).moves == ()                       # stable


def test_agents_on_a_call_move_only_after_it():
    s = seats(4, job=1, busy=True) + seats(2, job=1, start=5)
    jobs = [JobSpec(2, priority=5)]                            # job 1 stopped
    p = plan(jobs, s)
    assert {m.agent_id for m in p.moves} == {5, 6} and all(m.to_job == 2 for m in p.moves)
    assert p.pending == {1: 2, 2: 2, 3: 2, 4: 2}


def test_idle_agents_move_before_busy_ones():
    s = seats(3, job=1, busy=True) + seats(3, job=1, start=4)
    p = plan([JobSpec(1), JobSpec(2)], s)
    assert {m.agent_id for m in p.moves} == {4, 5, 6} and not p.pending


def test_a_stopped_job_with_no_other_job_detaches_its_agents():
    s = seats(2, job=1) + seats(1, job=1, busy=True, start=3)
    p = plan([], s)
    assert p.moves == (Move(1, 1, None), Move(2, 1, None)) and p.pending == {3: None}


def test_a_lowered_maximum_sends_agents_away():
    s = seats(5, job=1)
    p = plan([JobSpec(1, max_agents=2), JobSpec(2, priority=1, skills=frozenset({"x"}))], s)
    assert [m.to_job for m in p.moves] == [None, None, None]


def test_pins_are_kept_even_beyond_the_share():
    s = seats(4, job=1)
    jobs = [JobSpec(1, priority=10), JobSpec(2, priority=1)]
    p = plan(jobs, s, pins={1: 2, 2: 2, 3: 2})
    after = apply(s, p)
    assert counts(after) == {2: 3, 1: 1}
    assert plan(jobs, after, pins={1: 2, 2: 2, 3: 2}).moves == ()


def test_priority_change_rebalances():
    s = seats(8)
    jobs = [JobSpec(1, priority=5), JobSpec(2, priority=5)]
    after = apply(s, plan(jobs, s))
    assert counts(after) == {1: 4, 2: 4}
    jobs = [with_limits(jobs[0], priority=1), jobs[1]]
    p = plan(jobs, after)
    assert len(p.moves) == 3 and counts(apply(after, p)) == {1: 1, 2: 7}   # D'Hondt: 5,2.5,1.7,1.25,1 vs 1


def test_real_time_commands_validate():
    job = JobSpec(1, max_agents=2, skills=frozenset({"sales"}))
    assert with_limits(job, min_agents=1, priority=9) == JobSpec(1, priority=9, min_agents=1, max_agents=2,
                                                                skills=frozenset({"sales"}))
    with pytest.raises(AttachmentError):
        with_limits(job, min_agents=3)
    with pytest.raises(AttachmentError):
        with_limits(job, priority=0)
    none = frozenset()
    check_move(job, frozenset({"sales"}), none, attached=1, grant=None)
    with pytest.raises(AttachmentError, match="limit"):
        check_move(job, frozenset({"sales"}), none, attached=2, grant=None)
    with pytest.raises(AttachmentError, match="limit"):
        check_move(job, frozenset({"sales"}), none, attached=0, grant=0)
    with pytest.raises(AttachmentError, match="skills"):
        check_move(job, frozenset(), none, attached=0, grant=None)
    with pytest.raises(AttachmentError):
        check_move(None, frozenset(), none, attached=0, grant=None)
    grouped = JobSpec(2, skills=frozenset({"sales"}), groups=frozenset({"gold", "silver"}))
    check_move(grouped, frozenset({"sales"}), frozenset({"silver"}), attached=0, grant=None)
    with pytest.raises(AttachmentError, match="none of the groups"):
        check_move(grouped, frozenset({"sales"}), frozenset({"bronze"}), attached=0, grant=None)
    with pytest.raises(AttachmentError, match="skills"):       # the skills are named first
        check_move(grouped, frozenset(), frozenset({"gold"}), attached=0, grant=None)


SETS = st.sampled_from([(), ("a",), ("b",), ("a", "b")])
GROUPS = st.sampled_from([(), ("g",), ("h",), ("g", "h")])
job_lists = st.lists(st.tuples(st.integers(1, 10), st.integers(0, 4), st.one_of(st.none(), st.integers(0, 8)),
                               SETS, GROUPS), max_size=5)
seat_lists = st.lists(st.tuples(SETS, st.integers(0, 6), st.booleans(), GROUPS), max_size=30)


@settings(max_examples=400, deadline=None)
@given(job_lists, seat_lists)
def test_plans_respect_caps_skills_busy_agents_and_are_stable(js, ss):
    jobs = [JobSpec(i + 1, priority=p, min_agents=min(lo, hi) if hi is not None else lo, max_agents=hi,
                    skills=frozenset(sk), groups=frozenset(gr)) for i, (p, lo, hi, sk, gr) in enumerate(js)]
    s = [Seat(i + 1, frozenset(sk), job or None, busy, frozenset(gr)) for i, (sk, job, busy, gr) in enumerate(ss)]
    p = plan(jobs, s)
    by_id = {j.job_id: j for j in jobs}
    assert all(not x.busy for x in s if x.agent_id in {m.agent_id for m in p.moves})
    assert all(x.busy for x in s if x.agent_id in p.pending)
    final = {x.agent_id: x.job_id for x in apply(s, p)} | p.pending
    for agent_id, job in final.items():
        seat = next(x for x in s if x.agent_id == agent_id)
        if job is not None and job in by_id and agent_id in {m.agent_id for m in p.moves} | set(p.pending):
            assert by_id[job].skills <= seat.skills
            assert not by_id[job].groups or by_id[job].groups & seat.groups
        if job is not None and job in by_id:                  # nobody stays on a job it no longer fits
            assert by_id[job].skills <= seat.skills and (not by_id[job].groups or by_id[job].groups & seat.groups)
    for j in jobs:
        placed = sum(1 for job in final.values() if job == j.job_id)
        already = sum(1 for x in s if x.job_id == j.job_id)
        if j.max_agents is not None:
            assert placed <= max(j.max_agents, 0) or placed <= already
    # planning again after the moves (busy agents still where they were) moves nobody; the
    # pending moves go to the same jobs (equivalent agents on calls may swap targets)
    again = plan(jobs, apply(s, p))
    assert again.moves == ()
    assert set(again.pending) == set(p.pending)
    assert sorted(again.pending.values(), key=str) == sorted(p.pending.values(), key=str)

"""The agent state machine: every legal path, illegal events raise with state and event,
deferred commands, wrap-up limits and their timers."""
from datetime import datetime, timedelta, timezone

import pytest

from pom_actors.core.agents.state import (TRANSITIONS, Agent, AgentEvent, AgentState, IllegalAgentTransition,
                                          WrapTimers, apply, due_wrap_ups)

S, E = AgentState, AgentEvent
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def ready_agent(job_id: int = 7) -> Agent:
    a = Agent(1, "alice", frozenset({"sales"}), job_id=job_id)
    apply(a, E.LOGIN, at(0))
    apply(a, E.READY, at(1))
    return a


def test_a_whole_call_cycle_is_timestamped_and_logged():
    a = Agent(1, "alice", job_id=7)
    log = []
    log += apply(a, E.LOGIN, at(0))
    assert (a.state, a.reason, a.since) == (S.NOT_READY, "login", at(0))
    log += apply(a, E.READY, at(1))
    log += apply(a, E.RESERVE, at(2), job_id=7, call_id="c1")
    assert (a.state, a.call_id, a.call_job) == (S.RESERVED, "c1", 7)
    log += apply(a, E.CONNECT, at(3))
    log += apply(a, E.HANGUP, at(60), wrap_limit_s=30)
    assert a.state == S.WRAP_UP and a.wrap_until == at(90) and a.call_id == "c1"
    log += apply(a, E.DISPOSE, at(70), reason="sale")
    assert (a.state, a.call_id, a.wrap_until, a.since) == (S.READY, None, None, at(70))
    log += apply(a, E.NOT_READY, at(80), reason="lunch")
    assert (a.state, a.reason) == (S.NOT_READY, "lunch")
    log += apply(a, E.LOGOUT, at(90))
    assert a.state == S.LOGGED_OUT
    assert [(t.from_state, t.to_state, t.event) for t in log] == [
        (S.LOGGED_OUT, S.NOT_READY, "login"), (S.NOT_READY, S.READY, "ready"), (S.READY, S.RESERVED, "reserve"),
        (S.RESERVED, S.ON_CALL, "connect"), (S.ON_CALL, S.WRAP_UP, "hangup"), (S.WRAP_UP, S.READY, "dispose"),
        (S.READY, S.NOT_READY, "not_ready"), (S.NOT_READY, S.LOGGED_OUT, "logout")]
    assert [t.at for t in log] == [at(s) for s in (0, 1, 2, 3, 60, 70, 80, 90)]
    assert log[5].reason == "sale" and log[5].call_id == "c1" and log[5].job_id == 7
    assert log[6].reason == "lunch" and log[6].call_id is None


def test_release_returns_a_reserved_agent_to_ready():
    a = ready_agent()
    apply(a, E.RESERVE, at(2), job_id=7, call_id="c1")
    [t] = apply(a, E.RELEASE, at(4), reason="timeout")
    assert (a.state, a.call_id, t.call_id, t.reason) == (S.READY, None, "c1", "timeout")


def test_wrap_timeout_ends_after_call_work():
    a = ready_agent()
    apply(a, E.RESERVE, at(2), job_id=7, call_id="c1")
    apply(a, E.CONNECT, at(2))
    apply(a, E.HANGUP, at(10), wrap_limit_s=5)
    assert due_wrap_ups([a], at(14)) == [] and due_wrap_ups([a], at(15)) == [1]
    apply(a, E.WRAP_TIMEOUT, at(15))
    assert a.state == S.READY


def test_no_wrap_limit_means_no_timeout():
    a = ready_agent()
    apply(a, E.RESERVE, at(2), job_id=7, call_id="c1")
    apply(a, E.CONNECT, at(2))
    apply(a, E.HANGUP, at(10), wrap_limit_s=None)
    assert a.wrap_until is None and due_wrap_ups([a], at(10_000)) == []


ALL_ARGS = {"reason": "r", "job_id": 7, "call_id": "c"}


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("event", list(E))
def test_every_pair_is_legal_deferred_or_raises_with_state_and_event(state, event):
    a = Agent(1, "a", state=state, since=T0, job_id=7, call_id="c" if state in (S.RESERVED, S.ON_CALL, S.WRAP_UP) else None)
    try:
        out = apply(a, event, at(1), **ALL_ARGS)
    except IllegalAgentTransition as exc:
        assert (exc.state, exc.event, exc.agent_id) == (state, event, 1)
        assert (state, event) not in TRANSITIONS
        assert a.state == state                      # nothing changed
        return
    assert out and out[0].from_state == state
    if out[0].deferred:
        assert a.state == state and out[0].to_state == state
    else:
        assert (state, event) in TRANSITIONS and a.state == out[-1].to_state


def test_the_error_survives_pickling_as_it_crosses_ray():
    import pickle
    exc = pickle.loads(pickle.dumps(IllegalAgentTransition(S.ON_CALL, E.LOGOUT, 3)))
    assert (exc.state, exc.event, exc.agent_id) == (S.ON_CALL, E.LOGOUT, 3) and "on_call" in str(exc)


def test_not_ready_needs_a_reason_and_reserve_needs_a_call():
    a = ready_agent()
    with pytest.raises(ValueError):
        apply(a, E.NOT_READY, at(2))
    with pytest.raises(ValueError):
        apply(a, E.RESERVE, at(2), job_id=7)
    assert a.state == S.READY


def test_force_logoff_on_a_call_waits_for_the_hangup_and_skips_wrap_up():
    a = ready_agent()
    apply(a, E.RESERVE, at(2), job_id=7, call_id="c1")
    apply(a, E.CONNECT, at(3))
    [t] = apply(a, E.FORCE_LOGOFF, at(5), reason="supervisor")
    assert t.deferred and a.state == S.ON_CALL and a.pending == E.FORCE_LOGOFF
    [t] = apply(a, E.HANGUP, at(20), wrap_limit_s=30)
    assert (t.from_state, t.to_state, t.reason) == (S.ON_CALL, S.LOGGED_OUT, "supervisor")
    assert a.state == S.LOGGED_OUT and a.pending is None and a.call_id is None


def test_force_logoff_in_wrap_up_is_immediate():
    a = ready_agent()
    apply(a, E.RESERVE, at(2), job_id=7, call_id="c1")
    apply(a, E.CONNECT, at(3))
    apply(a, E.HANGUP, at(4), wrap_limit_s=30)
    apply(a, E.FORCE_LOGOFF, at(5))
    assert a.state == S.LOGGED_OUT


def test_force_logoff_of_a_reserved_agent_applies_when_the_reservation_is_released():
    a = ready_agent()
    apply(a, E.RESERVE, at(2), job_id=7, call_id="c1")
    apply(a, E.FORCE_LOGOFF, at(2.5))
    out = apply(a, E.RELEASE, at(3))
    assert [(t.from_state, t.to_state, t.event) for t in out] == [
        (S.RESERVED, S.READY, "release"), (S.READY, S.LOGGED_OUT, "force_logoff")]


def test_not_ready_during_a_call_applies_after_the_disposition():
    a = ready_agent()
    apply(a, E.RESERVE, at(2), job_id=7, call_id="c1")
    apply(a, E.CONNECT, at(3))
    apply(a, E.NOT_READY, at(4), reason="break")
    apply(a, E.HANGUP, at(10), wrap_limit_s=30)
    assert a.state == S.WRAP_UP and a.pending == E.NOT_READY
    out = apply(a, E.DISPOSE, at(12), reason="sale")
    assert [(t.to_state, t.event, t.reason) for t in out] == [(S.READY, "dispose", "sale"),
                                                              (S.NOT_READY, "not_ready", "break")]
    assert (a.state, a.reason, a.pending) == (S.NOT_READY, "break", None)


def test_logout_during_wrap_up_waits_and_the_strongest_pending_wins():
    a = ready_agent()
    apply(a, E.RESERVE, at(2), job_id=7, call_id="c1")
    apply(a, E.CONNECT, at(3))
    apply(a, E.LOGOUT, at(4))
    apply(a, E.NOT_READY, at(5), reason="break")     # weaker: does not replace the logout
    assert a.pending == E.LOGOUT
    apply(a, E.HANGUP, at(10), wrap_limit_s=30)
    out = apply(a, E.WRAP_TIMEOUT, at(40))
    assert [t.to_state for t in out] == [S.READY, S.LOGGED_OUT]


def test_ready_while_busy_cancels_a_pending_not_ready_but_not_a_force_logoff():
    a = ready_agent()
    apply(a, E.RESERVE, at(2), job_id=7, call_id="c1")
    apply(a, E.CONNECT, at(3))
    apply(a, E.NOT_READY, at(4), reason="break")
    [t] = apply(a, E.READY, at(5))
    assert t.deferred and a.pending is None
    apply(a, E.FORCE_LOGOFF, at(6))
    with pytest.raises(IllegalAgentTransition):
        apply(a, E.READY, at(7))
    assert a.pending == E.FORCE_LOGOFF


def test_wrap_timers_pop_in_time_order():
    timers = WrapTimers()
    timers.schedule(2, at(10))
    timers.schedule(1, at(5))
    timers.schedule(3, at(20))
    assert timers.due(at(4)) == []
    assert timers.due(at(10)) == [(1, at(5)), (2, at(10))]
    assert len(timers) == 1

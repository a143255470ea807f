import pytest

from pom_actors.core.lifecycle import (
    ACTIVE, DISPATCHING, TERMINAL, IllegalTransition, JobEvent as E, JobState as S,
    allowed_events, transition)


def run(state, *events, finishing=False):
    for event in events:
        state = transition(state, event, finishing=finishing)
    return state


def test_happy_paths():
    assert run(S.QUEUED, E.START) == S.RUNNING
    assert run(S.RUNNING, E.PAUSE) == S.PAUSING
    assert run(S.RUNNING, E.PAUSE, E.PAUSED) == S.PAUSED
    assert run(S.RUNNING, E.PAUSE, E.PAUSED, E.RESUME) == S.RESUMING
    assert run(S.RUNNING, E.PAUSE, E.PAUSED, E.RESUME, E.RESUMED) == S.RUNNING
    assert run(S.RUNNING, E.STOP, E.DRAINED) == S.STOPPED
    assert run(S.QUEUED, E.STOP) == S.STOPPED


def test_finish_drains_to_completed():
    assert transition(S.RUNNING, E.FINISH) == S.STOPPING
    assert transition(S.STOPPING, E.DRAINED, finishing=True) == S.COMPLETED
    assert transition(S.STOPPING, E.DRAINED, finishing=False) == S.STOPPED
    assert run(S.PAUSED, E.FINISH, E.DRAINED, finishing=True) == S.COMPLETED


@pytest.mark.parametrize("state", [S.RUNNING, S.PAUSING, S.PAUSED, S.RESUMING])
def test_stop_from_every_live_state(state):
    assert transition(state, E.STOP) == S.STOPPING


@pytest.mark.parametrize("state", [s for s in S if s not in TERMINAL])
def test_fail_from_every_non_terminal_state(state):
    assert transition(state, E.FAIL) == S.FAILED


@pytest.mark.parametrize("state, event", [
    (S.QUEUED, E.PAUSE), (S.QUEUED, E.RESUME), (S.QUEUED, E.DRAINED),
    (S.RUNNING, E.START), (S.RUNNING, E.RESUME), (S.RUNNING, E.PAUSED),
    (S.PAUSING, E.PAUSE), (S.PAUSED, E.PAUSE), (S.PAUSED, E.RESUMED),
    (S.STOPPING, E.STOP), (S.STOPPING, E.START),
    (S.COMPLETED, E.START), (S.STOPPED, E.FAIL), (S.FAILED, E.STOP),
])
def test_illegal_transitions_name_state_and_event(state, event):
    with pytest.raises(IllegalTransition, match=f"{state.value}.*{event.value}") as err:
        transition(state, event)
    assert isinstance(err.value, ValueError)
    assert (err.value.state, err.value.event) == (state, event)


@pytest.mark.parametrize("state", sorted(TERMINAL))
def test_terminal_states_take_no_event(state):
    for event in E:
        with pytest.raises(IllegalTransition):
            transition(state, event)
    assert allowed_events(state) == []


def test_allowed_events_are_user_commands():
    assert allowed_events(S.QUEUED) == [E.START, E.STOP]
    assert allowed_events(S.RUNNING) == [E.PAUSE, E.STOP]
    assert allowed_events(S.PAUSED) == [E.RESUME, E.STOP]
    assert allowed_events(S.STOPPING) == []
    for state in S:
        for event in allowed_events(state):
            transition(state, event)


def test_state_sets():
    assert TERMINAL == {S.COMPLETED, S.STOPPED, S.FAILED}
    assert DISPATCHING <= ACTIVE
    assert not ACTIVE & TERMINAL
    assert S.PAUSED not in ACTIVE and S.QUEUED not in ACTIVE
    assert all(s.value == s.name.lower() for s in S)


def test_illegal_transition_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(IllegalTransition(S.PAUSED, E.PAUSE)))
    assert (err.state, err.event) == (S.PAUSED, E.PAUSE) and "paused" in str(err)

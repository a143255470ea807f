"""The job lifecycle as one explicit transition table.

    queued --START--> running --PAUSE--> pausing --PAUSED--> paused --RESUME--> resuming
    resuming --RESUMED--> running
    queued --STOP--> stopped                                  (nothing to drain)
    running|pausing|paused|resuming --STOP--> stopping        (user stop)
    running|pausing|paused|resuming --FINISH--> stopping      (a finish criterion is met)
    stopping --DRAINED--> completed if the stop was a finish, else stopped
    any non-terminal --FAIL--> failed

Intermediate states (pausing, resuming, stopping) exist because managers act asynchronously:
the director moves on only when they report (PAUSED, RESUMED, DRAINED). Whether a stop is a
finish is stored with the job by the director and passed back as `finishing` with DRAINED.
"""
from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESUMING = "resuming"
    STOPPING = "stopping"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"


class JobEvent(StrEnum):
    START = "start"
    PAUSE = "pause"
    PAUSED = "paused"        # every manager has drained its in-flight attempts
    RESUME = "resume"
    RESUMED = "resumed"      # managers are up and claiming again
    STOP = "stop"
    FINISH = "finish"        # all work done or a finish criterion met
    DRAINED = "drained"      # stopping finished: nothing in flight any more
    FAIL = "fail"


class IllegalTransition(ValueError):
    def __init__(self, state: JobState, event: JobEvent):
        super().__init__(f"job in state {state} cannot take event {event}")
        self.state = state
        self.event = event

    def __reduce__(self):  # it crosses Ray calls: rebuild from (state, event), not the message
        return IllegalTransition, (self.state, self.event)


class StateChanged(RuntimeError):
    """A command lost a race with another change of the job's state; the caller may retry."""


S, E = JobState, JobEvent
_LIVE = (S.RUNNING, S.PAUSING, S.PAUSED, S.RESUMING)

TRANSITIONS: Mapping[tuple[JobState, JobEvent], JobState] = {
    (S.QUEUED, E.START): S.RUNNING,
    (S.QUEUED, E.STOP): S.STOPPED,
    (S.RUNNING, E.PAUSE): S.PAUSING,
    (S.PAUSING, E.PAUSED): S.PAUSED,
    (S.PAUSED, E.RESUME): S.RESUMING,
    (S.RESUMING, E.RESUMED): S.RUNNING,
    **{(state, E.STOP): S.STOPPING for state in _LIVE},
    **{(state, E.FINISH): S.STOPPING for state in _LIVE},
    (S.STOPPING, E.DRAINED): S.STOPPED,
    **{(state, E.FAIL): S.FAILED for state in S
       if state not in (S.COMPLETED, S.STOPPED, S.FAILED)},
}

TERMINAL: frozenset[JobState] = frozenset({S.COMPLETED, S.STOPPED, S.FAILED})
# States in which the job's managers exist (running, or draining towards paused/stopped).
ACTIVE: frozenset[JobState] = frozenset({S.RUNNING, S.PAUSING, S.RESUMING, S.STOPPING})
# States in which managers claim new work; in the other active states they only drain.
DISPATCHING: frozenset[JobState] = frozenset({S.RUNNING, S.RESUMING})
# Events a user may send; the rest are reported by managers or the director itself.
USER_EVENTS: frozenset[JobEvent] = frozenset({E.START, E.PAUSE, E.RESUME, E.STOP})


def transition(state: JobState, event: JobEvent, *, finishing: bool = False) -> JobState:
    """The state after `event`; `finishing` says whether a DRAINED stop was a FINISH."""
    try:
        target = TRANSITIONS[state, event]
    except KeyError:
        raise IllegalTransition(state, event) from None
    if target == S.STOPPED and state == S.STOPPING and finishing:
        return S.COMPLETED
    return target


def allowed_events(state: JobState) -> list[JobEvent]:
    """The user commands legal in `state`, in a stable order, for the API to offer."""
    return [event for event in JobEvent if event in USER_EVENTS and (state, event) in TRANSITIONS]

"""Bridging an answered live call onto an agent: an agent within 2 s, or the call is abandoned.

The media gateway tells the Campaign Manager that a call of an agent-based handler was
answered by a person (a notice with code `ANSWERED`, not a completion). The manager asks the
Agent Manager to reserve ready agents of the job for its waiting calls (one batch per cycle),
decides here what each call becomes, and tells the gateway which calls to bridge onto which
agent's nailed session. A call nobody takes within the wait of the media server (its notice
says how long: `BRIDGE_WAIT_S`, the rule's 2 s, unless configured) is abandoned: the media
server plays the message and ends it with `ABANDONED` (a completion code that counts toward the
nuisance rule, core/codes.py). The deadline is the gateway's, so a call whose manager is gone is
abandoned all the same; a bridge asked too late is refused there and its agent released. Times
are business time (the clock the simulator runs on).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

BRIDGE_WAIT_S = 2.0          # the rule: an answered call gets an agent within 2 s or is abandoned
ANSWERED = "answered"        # the gateway's notice: a person answered, the call waits for an agent
ABANDONED = "abandoned"      # the completion of a call no agent took in time


def deadline(answered_at: datetime, wait_s: float = BRIDGE_WAIT_S) -> datetime:
    """The last instant at which a call answered at `answered_at` may still be bridged."""
    return answered_at + timedelta(seconds=wait_s)


@dataclass(slots=True)
class Bridging:
    """What becomes of each waiting call after one round of reservations.

    connect  call -> agent: bridge it now
    release  call -> agent reserved too late (past the deadline): free the agent
    abandon  no agent within the wait: the gateway ends it as abandoned
    wait     no agent yet, still within the wait: ask again at the next cycle
    """

    connect: dict[str, int] = field(default_factory=dict)
    release: dict[str, int] = field(default_factory=dict)
    abandon: list[str] = field(default_factory=list)
    wait: list[str] = field(default_factory=list)


def decide(deadlines: Mapping[str, datetime], reserved: Mapping[str, int | None], now: datetime) -> Bridging:
    """Each waiting call (`deadlines`: call -> the last instant it may be bridged) given the
    agents reserved for it this round (`reserved`: call -> agent id, None or absent when no
    agent was ready)."""
    out = Bridging()
    for call, last in deadlines.items():
        agent = reserved.get(call)
        in_time = now <= last
        if agent is not None:
            (out.connect if in_time else out.release)[call] = agent
            if not in_time:
                out.abandon.append(call)
        else:
            (out.wait if in_time else out.abandon).append(call)
    return out


def expired(deadlines: Mapping[str, datetime], now: datetime) -> list[str]:
    """The waiting calls past their deadline (not worth an agent any more)."""
    return [call for call, last in deadlines.items() if now > last]

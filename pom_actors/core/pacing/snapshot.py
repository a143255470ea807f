"""The contract between a pacer and whoever asks it how many calls to place.

The Campaign Manager calls `Pacer.decide(snapshot)` once per scheduling tick. The snapshot is
what the Agent Manager and the media gateway know at `now`: agents by state (with how long
they have been in it, so a pacer can estimate when they free up), calls in flight by stage,
the abandon counters of the rule window, the port cap and the outcomes seen since the last
tick. Durations are seconds relative to `now`, so a snapshot needs one clock reading only and
the same snapshot always yields the same decision.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum


class EventKind(str, Enum):
    """What a pacer can learn from (carried in `PacerSnapshot.events`)."""

    LIVE = "live"            # dial answered by a person (or a machine AMD took for one); seconds = dial→answer
    MACHINE = "machine"      # answering machine detected and released; seconds = dial→detection
    BUSY = "busy"            # seconds = dial→busy signal
    NO_ANSWER = "no_answer"  # ring timeout reached; seconds = dial→timeout
    INVALID = "invalid"      # number not in service / network failure; seconds = dial→failure
    CONNECTED = "connected"  # a live call reached an agent; seconds = wait in queue after answer
    ABANDONED = "abandoned"  # a live call got no agent within the connect limit; seconds = wait
    TALK_END = "talk_end"    # an agent finished talking; seconds = talk duration
    WRAP_END = "wrap_end"    # an agent finished after-call work; seconds = wrap duration
    UNPLACED = "unplaced"    # the manager placed fewer dials than decided; count = how many fewer


DIAL_RESULTS = frozenset({EventKind.LIVE, EventKind.MACHINE, EventKind.BUSY,
                          EventKind.NO_ANSWER, EventKind.INVALID})


@dataclass(frozen=True, slots=True)
class PacerEvent:
    """One outcome since the previous snapshot, stamped by the snapshot that carries it."""

    kind: EventKind
    seconds: float = 0.0
    count: int = 1


@dataclass(frozen=True, slots=True)
class RuleCounters:
    """Counts of the nuisance-call rule window (its length is the campaign's rule, see
    `AbandonRule`): answered calls classified live, those not connected within the connect
    limit, machine detections (the UK formula counts an estimated share of them as
    abandons) and, for cruise control, answered calls connected within the service time."""

    live_answered: int = 0
    abandoned: int = 0
    machine_detected: int = 0
    within_service_level: int = 0


@dataclass(frozen=True, slots=True)
class PreviewOffer:
    """A contact shown to a preview agent. `state` is what the agent did with it so far."""

    agent_id: str
    contact_id: str
    shown_for: float
    state: str = "shown"          # shown | accepted | skipped | cancelled
    skip_code: str | None = None


@dataclass(frozen=True, slots=True)
class InboundQueue:
    """The inbound queue a skill-based pacer watches."""

    length: int = 0
    expected_wait: float = 0.0


@dataclass(frozen=True, slots=True)
class PacerSnapshot:
    """Everything a pacer may look at. Tuples of seconds: one entry per agent or call.

    ready        seconds each ready (idle, logged-in, not reserved) agent has been waiting
    talking      seconds each talking agent has been on its current call
    wrapping     seconds each agent in after-call work has been wrapping
    reserved     agents held by a preview offer (neither ready nor busy for pacing)
    dialling     seconds since each outstanding dial (dialling or ringing, no result yet)
    waiting      seconds each answered live call has been waiting for an agent
    counters     the abandon / service-level counters of the rule window
    ports_cap    outbound ports this job may hold at once (None = unlimited)
    events       outcomes since the previous snapshot
    ready_ids    agent ids aligned with `ready` when the caller needs named assignments (preview)
    offers       open preview offers
    inbound      the watched inbound queue (skill-based pacing)
    """

    now: datetime
    ready: tuple[float, ...] = ()
    talking: tuple[float, ...] = ()
    wrapping: tuple[float, ...] = ()
    reserved: int = 0
    dialling: tuple[float, ...] = ()
    waiting: tuple[float, ...] = ()
    counters: RuleCounters = field(default_factory=RuleCounters)
    ports_cap: int | None = None
    events: tuple[PacerEvent, ...] = ()
    ready_ids: tuple[str, ...] = ()
    offers: tuple[PreviewOffer, ...] = ()
    inbound: InboundQueue | None = None

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("snapshot time must be timezone-aware")

    @property
    def in_flight(self) -> int:
        """Calls holding a port and not yet with an agent."""
        return len(self.dialling) + len(self.waiting)

    @property
    def staffed(self) -> int:
        """Agents working the job: ready, talking or wrapping (preview-reserved excluded)."""
        return len(self.ready) + len(self.talking) + len(self.wrapping)

    def port_room(self) -> int | None:
        """How many more calls the port cap allows (talking calls hold a port too)."""
        if self.ports_cap is None:
            return None
        return max(0, self.ports_cap - self.in_flight - len(self.talking))


@dataclass(frozen=True, slots=True)
class PacingDecision:
    """What to do now. `dials` is never negative and never beyond the port room.

    offer_to   ready agents (ids) that should be shown a new preview contact
    dial_for   preview agents whose contact must be dialled now (accepted or timed out)
    release    preview agents whose offer is finished (skipped or cancelled): the manager
               records the skip code / returns the contact, and the agent is free again
    release_agents  skill-based pacing: agents to hand back to the inbound queue
    alarm      why the job must not dial on (the manager raises it as an alarm); None: none
    """

    dials: int
    reason: str
    offer_to: tuple[str, ...] = ()
    dial_for: tuple[str, ...] = ()
    release: tuple[tuple[str, str | None], ...] = ()
    release_agents: int = 0
    alarm: str | None = None

    def __post_init__(self) -> None:
        if self.dials < 0:
            raise ValueError("a pacing decision cannot place a negative number of dials")


def capped(dials: int, snapshot: PacerSnapshot) -> int:
    """Clamp a wish to [0, port room]: the one place the port cap is enforced."""
    room = snapshot.port_room()
    dials = max(0, int(dials))
    return dials if room is None else min(dials, room)

"""A simulated media server for voice orders.

Each call's fate is drawn from a `VoiceProfile` with uniforms derived from a hash of
(seed, attempt id), not from a shared RNG: the same attempt id always has the same outcome
and durations, whatever the batch it came in, the order of placement or the gateway that
took it — so runs reproduce and a taken-over gateway agrees with the one it replaces.
Completions wait in one heap keyed by business time, popped in batches by `due()`; there is
no asyncio task per call. In *instant* mode every duration is zero and completions skip the
heap altogether, for throughput benchmarks of the rest of the system.

Agent legs (the nailer flow): `hold(session id -> agent)` is the Agent Manager's list of the
agents' nailed sessions (core/agents/nailing.py); each is an agent leg kept up between calls,
opened when it first appears and released when it leaves the list (after the call it carries).
Customer calls (the driver flow): a call of an agent-based handler (`Order.bridge`) answered by
a person does not run its talk time at once. Its answer is a notice (`ANSWERED`, not a
completion) for the manager, which reserves an agent and asks `bridge(call -> agent)`: the
call joins the agent's nailed leg (one customer call on it at a time; an agent with no leg
held here is refused) and talks from then on, its details naming the agent, the session and
the wait. A call not bridged by its
deadline (`bridge_wait_s` after the answer: 2 s by default, core/agents/bridge.py) is abandoned — the message played —
and completes with `ABANDONED`. Timed mode only: instant mode has no talk to bridge.
"""
from __future__ import annotations

import bisect
import heapq
import math
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import blake2b
from statistics import NormalDist
from typing import Callable, Iterable, Sequence

import pydantic

from pom_actors.core.agents.bridge import ABANDONED, ANSWERED, BRIDGE_WAIT_S, deadline
from pom_actors.core.clock import Clock
from pom_actors.core.orders import Order, Outcome

CODES = ("answer_human", "answer_machine", "busy", "no_answer", "invalid_number", "fax",
         "network_refusal")
_UNIT = 1.0 / 2 ** 64
_NORMAL = NormalDist()
_DIST_KEYS = {"fixed": {"value"}, "uniform": {"low", "high"}, "exponential": {"mean"},
              "lognormal": {"median", "sigma"}}


def answered_at(completed_at: datetime, details: dict) -> datetime:
    """When a person answered a call bridged onto an agent, from its completion (the time and
    details of its `answer_human` outcome: it talked `talk_s` from the bridge, `wait_s` after
    the answer)."""
    return completed_at - timedelta(seconds=details["talk_s"] + details["wait_s"])


def sampler(spec: dict) -> Callable[[float], float]:
    """Inverse CDF of a duration spec: maps a uniform in (0, 1) to business seconds.

    Specs: {"dist": "fixed", "value"}, {"dist": "uniform", "low", "high"},
    {"dist": "exponential", "mean"}, {"dist": "lognormal", "median", "sigma"}; each may add
    "min" and/or "max" to clamp. Raises ValueError on a malformed spec."""
    dist = spec.get("dist")
    if dist not in _DIST_KEYS:
        raise ValueError(f"unknown dist {dist!r}; expected one of {sorted(_DIST_KEYS)}")
    allowed = _DIST_KEYS[dist] | {"dist", "min", "max"}
    missing, extra = _DIST_KEYS[dist] - spec.keys(), spec.keys() - allowed
    if missing or extra:
        raise ValueError(f"{dist} needs {sorted(_DIST_KEYS[dist])} (optional min, max); "
                         f"missing {sorted(missing)}, unexpected {sorted(extra)}")
    p = {k: float(v) for k, v in spec.items() if k != "dist"}
    if any(v < 0 or math.isnan(v) or math.isinf(v) for v in p.values()):
        raise ValueError(f"{dist} parameters must be finite and >= 0: {spec}")
    lo, hi = p.get("min", 0.0), p.get("max", math.inf)
    if lo > hi:
        raise ValueError(f"min {lo} > max {hi}")
    if dist == "fixed":
        value = p["value"]
        base: Callable[[float], float] = lambda u: value
    elif dist == "uniform":
        low, high = p["low"], p["high"]
        if low > high:
            raise ValueError(f"uniform low {low} > high {high}")
        base = lambda u: low + u * (high - low)
    elif dist == "exponential":
        mean = p["mean"]
        base = lambda u: -mean * math.log1p(-u)
    else:
        median, sigma = p["median"], p["sigma"]
        base = lambda u: median * math.exp(sigma * _NORMAL.inv_cdf(u))
    return lambda u: min(hi, max(lo, base(u)))


class VoiceProfile(pydantic.BaseModel):
    """Outcome probabilities (must sum to 1) and duration specs in business seconds."""

    model_config = pydantic.ConfigDict(extra="forbid")

    answer_human: float = pydantic.Field(0.45, ge=0, le=1)
    answer_machine: float = pydantic.Field(0.15, ge=0, le=1)
    busy: float = pydantic.Field(0.10, ge=0, le=1)
    no_answer: float = pydantic.Field(0.20, ge=0, le=1)
    invalid_number: float = pydantic.Field(0.03, ge=0, le=1)
    fax: float = pydantic.Field(0.02, ge=0, le=1)
    network_refusal: float = pydantic.Field(0.05, ge=0, le=1)
    ring_s: dict = {"dist": "lognormal", "median": 8.0, "sigma": 0.4, "min": 1.0}
    talk_s: dict = {"dist": "lognormal", "median": 45.0, "sigma": 0.7, "min": 2.0}
    machine_s: dict = {"dist": "lognormal", "median": 20.0, "sigma": 0.3, "min": 3.0}
    setup_s: dict = {"dist": "uniform", "low": 0.5, "high": 3.0}
    instant: bool = False
    seed: int = 0
    # business seconds an answered call to bridge waits for an agent (the rule: 2; a test
    # whose clock runs far faster than real time needs more than its managers' cycle)
    bridge_wait_s: float = pydantic.Field(BRIDGE_WAIT_S, gt=0, le=600)

    @pydantic.field_validator("ring_s", "talk_s", "machine_s", "setup_s")
    @classmethod
    def _valid_dist(cls, spec: dict) -> dict:
        sampler(spec)
        return spec

    @pydantic.model_validator(mode="after")
    def _sums_to_one(self) -> "VoiceProfile":
        total = sum(self.probabilities())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"outcome probabilities sum to {total:.6f}, not 1")
        return self

    def probabilities(self) -> list[float]:
        """In the order of `CODES`."""
        return [getattr(self, code) for code in CODES]


@dataclass(slots=True)
class AgentLeg:
    """A nailed agent session: the customer call it carries (None: idle), and whether it is
    released once that call ends (`closing`)."""

    session_id: str
    agent_id: int
    call: str | None = None
    closing: bool = False


class VoiceSimulator:
    def __init__(self, profile: VoiceProfile, clock: Clock, name: str = ""):
        """`name` (the gateway's) goes into every outcome's details as "gateway"."""
        self._profile, self._clock, self._name = profile, clock, name
        # the hash state after "<seed>:", copied per call: cheaper than hashing seed + id anew
        self._hash = blake2b(f"{profile.seed}:".encode(), digest_size=32)
        cumulative, acc = [], 0.0
        for p in profile.probabilities():
            acc += p
            cumulative.append(acc)
        cumulative[-1] = math.inf  # a uniform above a sum rounded below 1 still picks a code
        self._cumulative = cumulative
        self._ring, self._talk = sampler(profile.ring_s), sampler(profile.talk_s)
        self._machine, self._setup = sampler(profile.machine_s), sampler(profile.setup_s)
        self._heap: list[tuple[datetime, int, Outcome]] = []
        self._ready: list[Outcome] = []
        self._seq = 0
        self._open = 0                                   # calls placed, completion not yet popped
        self._marks: dict[int, str] = {}                 # heap seq -> "notice" | "deadline" | "leg"
        # answered call -> (answered at, talk_s, its details so far, (job, shard, epoch))
        self._waiting: dict[str, tuple[datetime, float, dict, tuple[int, int, int]]] = {}
        self._legs: dict[str, AgentLeg] = {}            # nailed session id -> its agent leg
        self._leg_of: dict[int, AgentLeg] = {}          # agent -> its leg
        self._legs_opened = self._legs_released = 0

    def __len__(self) -> int:
        """Calls placed whose completion `due()` has not yet popped."""
        return self._open

    def _push(self, at: datetime, outcome: Outcome, mark: str | None = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, outcome))
        if mark is not None:
            self._marks[self._seq] = mark

    def place(self, orders: Sequence[Order], now: datetime | None = None) -> None:
        """Start the calls at `now` (default: the clock's now) and schedule their completions.
        A no_answer completes exactly at the order's ring timeout; an answered call rings at
        most that long."""
        now = self._clock.now() if now is None else now
        self._open += len(orders)
        if self._profile.instant:
            self._place_instant(orders, now)
            return
        cumulative, seeded, name = self._cumulative, self._hash, self._name
        heap, ready, unpack = self._heap, self._ready, struct.Struct("<4Q").unpack
        for order in orders:
            digest = seeded.copy()
            digest.update(order.attempt_id.encode())
            words = unpack(digest.digest())
            u0, u1, u2, u3 = ((w + 0.5) * _UNIT for w in words)
            code = CODES[bisect.bisect_right(cumulative, u0)]
            if code == "answer_human" or code == "answer_machine":
                ring = min(self._ring(u1), order.ring_timeout)
                talk = (self._talk if code == "answer_human" else self._machine)(u2)
                details, total = {"ring_s": ring, "talk_s": talk}, ring + talk
            elif code == "no_answer":
                details, total = {"ring_s": order.ring_timeout}, order.ring_timeout
            elif code == "fax":
                ring = min(self._ring(u1), order.ring_timeout)
                setup = self._setup(u3)
                details, total = {"ring_s": ring, "setup_s": setup}, ring + setup
            else:
                setup = self._setup(u3)
                details, total = {"setup_s": setup}, setup
            if name:
                details["gateway"] = name
            if order.bridge and code == "answer_human":
                self._answer(order, now + timedelta(seconds=ring), details)
                continue
            at = now + timedelta(seconds=total)
            outcome = Outcome(order.attempt_id, code, at, details, order.job_id, order.shard,
                              order.epoch)
            if total <= 0:
                ready.append(outcome)
            else:
                self._seq += 1
                heapq.heappush(heap, (at, self._seq, outcome))

    def _answer(self, order: Order, answered_at: datetime, details: dict) -> None:
        """A person answered a call to bridge: the notice now, the abandon at the deadline
        (stale once the call is bridged)."""
        talk = details.pop("talk_s")
        meta = (order.job_id, order.shard, order.epoch)
        self._waiting[order.attempt_id] = (answered_at, talk, details, meta)
        wait = self._profile.bridge_wait_s
        self._push(answered_at, Outcome(order.attempt_id, ANSWERED, answered_at,
                                        {**details, "bridge_wait_s": wait}, *meta), "notice")
        gone = deadline(answered_at, wait)
        self._push(gone, Outcome(order.attempt_id, ABANDONED, gone,
                                 {**details, "wait_s": wait, "message": "played"}, *meta), "deadline")

    def hold(self, sessions: dict[str, int]) -> dict[str, int]:
        """Hold exactly these nailed sessions (session id -> agent): open an agent leg for each
        new one, keep those held, release the others — one carrying a call when its call ends.
        Returns `agent_legs()`."""
        released = [sid for sid in self._legs if sid not in sessions]
        return self.hold_changes(sessions, released)

    def hold_changes(self, added: dict[str, int], released: Iterable[str]) -> dict[str, int]:
        """`hold` told as the changes since the list last held: the sessions `added` (session
        id -> agent; one already held is kept) and those `released`. Returns `agent_legs()`."""
        for sid, agent in added.items():
            leg = self._legs.get(sid)
            if leg is None:
                old = self._leg_of.get(agent)
                if old is not None:
                    old.closing = True                  # the agent's previous session goes
                    self._close(old)
                leg = self._legs[sid] = self._leg_of[agent] = AgentLeg(sid, agent)
                self._legs_opened += 1
            leg.closing = False
        for sid in released:
            leg = self._legs.get(sid)
            if leg is not None and sid not in added:
                leg.closing = True
                self._close(leg)
        return self.agent_legs()

    def _close(self, leg: AgentLeg) -> None:
        """Release a closing leg once it carries no call."""
        if leg.closing and leg.call is None and self._legs.pop(leg.session_id, None) is not None:
            if self._leg_of.get(leg.agent_id) is leg:
                del self._leg_of[leg.agent_id]
            self._legs_released += 1

    def bridge(self, calls: dict[str, int], now: datetime | None = None) -> list[str]:
        """Bridge each answered call onto its agent's nailed leg; the calls refused: not
        waiting (unknown, or past its deadline), the agent has no leg held here (or one being
        released), or its leg already carries a call."""
        now = self._clock.now() if now is None else now
        refused = []
        for call, agent in calls.items():
            waiting = self._waiting.get(call)
            leg = self._leg_of.get(agent)
            if waiting is None or now > deadline(waiting[0], self._profile.bridge_wait_s) \
                    or leg is None or leg.closing or leg.call is not None:
                refused.append(call)
                continue
            del self._waiting[call]
            answered_at, talk, details, meta = waiting
            leg.call = call
            done = now + timedelta(seconds=talk)
            details = {**details, "talk_s": talk, "wait_s": max(0.0, (now - answered_at).total_seconds()),
                       "agent_id": agent, "session_id": leg.session_id}
            self._push(done, Outcome(call, "answer_human", done, details, *meta), "leg")
        return refused

    def agent_legs(self) -> dict[str, int]:
        """Nailed agent legs held, how many carry a call, answered calls waiting for one, and
        the legs opened and released since the start."""
        return {"nailed": len(self._legs), "bridged": sum(1 for leg in self._legs.values() if leg.call),
                "waiting": len(self._waiting), "opened": self._legs_opened, "released": self._legs_released}

    def _place_instant(self, orders: Sequence[Order], now: datetime) -> None:
        """Zero durations: only the outcome's uniform is needed (the same one as in timed
        mode, so an attempt gets the same code either way), and no heap. The outcomes share
        one details dict: a fresh one each would double the objects the GC has to track."""
        cumulative, seeded = self._cumulative, self._hash
        details = {"gateway": self._name} if self._name else {}
        unpack, bisect_right, ready = struct.Struct("<Q").unpack_from, bisect.bisect_right, \
            self._ready
        for order in orders:
            attempt_id = order.attempt_id
            digest = seeded.copy()
            digest.update(attempt_id.encode())
            word = unpack(digest.digest())[0]
            ready.append(Outcome(attempt_id, CODES[bisect_right(cumulative, (word + 0.5) * _UNIT)],
                                 now, details, order.job_id, order.shard, order.epoch))

    def due(self, now: datetime | None = None) -> list[Outcome]:
        """Pop every completion due at or before `now` (default: the clock's now)."""
        now = self._clock.now() if now is None else now
        popped, self._ready = self._ready, []
        heap, marks, notices = self._heap, self._marks, 0
        while heap and heap[0][0] <= now:
            _, seq, outcome = heapq.heappop(heap)
            mark = marks.pop(seq, None) if marks else None
            if mark == "notice":
                notices += 1
            elif mark == "deadline":
                if self._waiting.pop(outcome.attempt_id, None) is None:
                    continue                                # bridged in time: nothing to abandon
            elif mark == "leg":
                leg = self._legs.get(outcome.details["session_id"])
                if leg is not None:                                     # the leg stays nailed
                    leg.call = None
                    self._close(leg)
            popped.append(outcome)
        self._open -= len(popped) - notices
        return popped

    def next_due(self) -> datetime | None:
        """When the earliest pending completion falls due; None when nothing is pending."""
        if self._ready:
            return min(o.at for o in self._ready)
        return self._heap[0][0] if self._heap else None

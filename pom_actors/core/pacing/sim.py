"""A discrete-event simulation of an outbound call centre that drives a pacer exactly as the
Campaign Manager will: one `PacerSnapshot` per tick in, `PacingDecision.dials` out.

Modelled: agents with talk and wrap-up distributions (exponential or lognormal), dial
outcomes (live answer, answering machine with a detection delay, busy, no answer at the ring
timeout, invalid number), lognormal ring times, answering-machine detection errors both ways
(a person taken for a machine is hung up on — a UK-rule abandon; a machine taken for a person
goes to an agent for a few seconds), the connect rule (an answered call without an agent
within `connect_limit_s` is abandoned) and a drop of the live-answer rate at `drop_at` of the
shift. Random draws come from one numpy generator per stream, so the same seed gives the same
shift whatever the pacer.
"""
from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

import numpy as np

from pom_actors.core.pacing.base import Pacer
from pom_actors.core.pacing.snapshot import EventKind, PacerEvent, PacerSnapshot, RuleCounters

SHIFT_START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class CallCentre:
    """One simulated campaign: the true parameters a pacer has to discover."""

    agents: int
    hit_rate: float                      # share of dials answered by a person (before the drop)
    talk_mean: float
    talk_dist: Literal["lognormal", "exponential"] = "lognormal"
    talk_sigma: float = 0.8              # lognormal shape of talk time
    wrap_mean: float = 20.0
    wrap_dist: Literal["lognormal", "exponential"] = "exponential"
    wrap_sigma: float = 0.5
    shift_s: float = 8 * 3600.0
    drop_at: float = 0.5                 # share of the shift after which the live rate drops
    drop_factor: float = 0.6             # live rate multiplier after the drop
    machine_share: float = 0.30          # of the dials not answered live
    busy_share: float = 0.10
    invalid_share: float = 0.05          # the rest ring out (no answer)
    ring_mean: float = 8.0               # seconds to answer (people and machines), lognormal
    ring_sd: float = 5.0
    ring_timeout: float = 25.0
    busy_s: float = 4.0
    invalid_s: float = 1.5
    amd_delay_mean: float = 3.0          # seconds after answer to classify a machine
    amd_false_negative: float = 0.10     # machines taken for people
    amd_false_positive: float = 0.03     # people taken for machines
    machine_talk_s: float = 8.0          # an agent's time on a machine it was given
    connect_limit_s: float = 2.0
    tick_s: float = 2.0                  # the Campaign Manager asks its pacer this often
    ports: int | None = None

    def live_rate_at(self, t: float) -> float:
        return self.hit_rate * (self.drop_factor if t >= self.drop_at * self.shift_s else 1.0)


@dataclass(frozen=True)
class ShiftResult:
    occupancy: float          # (talk + wrap) / logged-in time
    idle_gap_mean: float      # seconds from ready to next call, over all gaps
    idle_gap_p95: float
    abandon: float            # US formula: abandoned / answered-as-live
    abandon_uk: float         # UK formula: AMD false positives count as abandons
    worst_hour: float         # highest hourly abandon rate (US formula)
    dials_per_agent_hour: float
    dials: int
    live: int
    abandoned: int


class _Stream:
    """Batched draws from a numpy generator: one numpy call per 4096 values, not per value."""

    def __init__(self, rng: np.random.Generator, draw, size: int = 4096):
        self._draw = draw
        self._rng = rng
        self._size = size
        self._buf: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._draw(self._rng, self._size).tolist()
            self._i = 0
        x = self._buf[self._i]
        self._i += 1
        return x


def _duration(mean: float, dist: str, sigma: float):
    if dist == "exponential":
        return lambda rng, n: rng.exponential(mean, n)
    mu = math.log(mean) - 0.5 * sigma * sigma
    return lambda rng, n: rng.lognormal(mu, sigma, n)


def _ring(mean: float, sd: float):
    s2 = math.log(1.0 + (sd / mean) ** 2)
    mu = math.log(mean) - 0.5 * s2
    s = math.sqrt(s2)
    return lambda rng, n: rng.lognormal(mu, s, n)


_TALK_END, _WRAP_END, _RESULT, _ANSWER, _ABANDON = range(5)
_MACH, _BUSY, _INV, _NONE = range(4)
_RESULT_KINDS = (EventKind.MACHINE, EventKind.BUSY, EventKind.INVALID, EventKind.NO_ANSWER)


def run_shift(centre: CallCentre, pacer: Pacer, seed: int, history: RuleCounters | None = None) -> ShiftResult:
    """Simulate one shift of `centre` paced by `pacer`; deterministic in `seed`. `history`:
    the campaign's rule window before the shift (earlier jobs), added to the counters the
    pacer sees (a warm start; the result's figures count this shift only)."""
    c = centre
    h = history or RuleCounters()
    rngs = [np.random.default_rng([seed, k]) for k in range(7)]
    uniform = _Stream(rngs[0], lambda r, n: r.random(n))
    uniform2 = _Stream(rngs[1], lambda r, n: r.random(n))
    ring = _Stream(rngs[2], _ring(c.ring_mean, c.ring_sd))
    talk = _Stream(rngs[3], _duration(c.talk_mean, c.talk_dist, c.talk_sigma))
    wrap = _Stream(rngs[4], _duration(c.wrap_mean, c.wrap_dist, c.wrap_sigma))
    amd = _Stream(rngs[5], lambda r, n: r.exponential(c.amd_delay_mean, n))
    mtalk = _Stream(rngs[6], lambda r, n: r.exponential(c.machine_talk_s, n))

    end = c.shift_s
    drop_t = c.drop_at * end
    p_before, p_after = c.hit_rate, c.hit_rate * c.drop_factor
    m_cut = c.machine_share
    b_cut = m_cut + c.busy_share
    i_cut = b_cut + c.invalid_share
    limit = c.connect_limit_s

    heap: list[tuple[float, int, int, int, float | int]] = []
    push = heapq.heappush
    pop = heapq.heappop
    seq = 0
    ready: dict[int, float] = {a: 0.0 for a in range(c.agents)}   # agent -> ready since
    talking: dict[int, float] = {}
    wrapping: dict[int, float] = {}
    dialling: dict[int, float] = {}                                 # call -> dialled at
    waiting: dict[int, float] = {}                                  # call -> answered at
    queue: deque[int] = deque()
    machine_call: set[int] = set()
    events: list[PacerEvent] = []
    gaps: list[float] = []
    hour_live = [0] * (int(end // 3600) + 2)
    hour_ab = [0] * len(hour_live)
    busy_time = 0.0
    n_dials = n_live = n_ab = n_machine = n_fp = n_sl = 0
    next_call = 0
    ev_live = EventKind.LIVE

    def connect(agent: int, call: int, t: float) -> None:
        nonlocal seq
        talking[agent] = t
        dur = mtalk() if call in machine_call else talk()
        seq += 1
        push(heap, (t + dur, seq, _TALK_END, agent, dur))

    t = 0.0
    tick = c.tick_s
    while t < end:
        while heap and heap[0][0] <= t:
            at, _, kind, who, x = pop(heap)
            if kind == _RESULT:               # a dial resolved without reaching an agent
                events.append(PacerEvent(_RESULT_KINDS[x], at - dialling.pop(who)))
            elif kind == _ANSWER:             # classified live: to an agent or the queue
                dialled = dialling.pop(who)
                events.append(PacerEvent(ev_live, at - dialled))
                n_live += 1
                hour_live[int(at // 3600)] += 1
                if ready:
                    agent = next(iter(ready))
                    gaps.append(at - ready.pop(agent))
                    n_sl += 1
                    connect(agent, who, at)
                else:
                    waiting[who] = at
                    queue.append(who)
                    seq += 1
                    push(heap, (at + limit, seq, _ABANDON, who, 0.0))
            elif kind == _TALK_END:
                del talking[who]
                busy_time += x
                wrapping[who] = at
                events.append(PacerEvent(EventKind.TALK_END, x))
                dur = wrap()
                seq += 1
                push(heap, (at + dur, seq, _WRAP_END, who, dur))
            elif kind == _WRAP_END:
                del wrapping[who]
                busy_time += x
                events.append(PacerEvent(EventKind.WRAP_END, x))
                while queue and queue[0] not in waiting:
                    queue.popleft()
                if queue:
                    call = queue.popleft()
                    wait = at - waiting.pop(call)
                    gaps.append(0.0)
                    if wait <= limit:
                        n_sl += 1
                    events.append(PacerEvent(EventKind.CONNECTED, wait))
                    connect(who, call, at)
                else:
                    ready[who] = at
            else:                             # _ABANDON check
                answered = waiting.pop(who, None)
                if answered is not None:
                    n_ab += 1
                    hour_ab[int(answered // 3600)] += 1
                    events.append(PacerEvent(EventKind.ABANDONED, at - answered))

        snap = PacerSnapshot(
            now=SHIFT_START + timedelta(seconds=t),
            ready=tuple([t - s for s in ready.values()]),
            talking=tuple([t - s for s in talking.values()]),
            wrapping=tuple([t - s for s in wrapping.values()]),
            dialling=tuple([t - s for s in dialling.values()]),
            waiting=tuple([t - s for s in waiting.values()]),
            counters=RuleCounters(n_live + h.live_answered, n_ab + h.abandoned, n_machine + h.machine_detected,
                                  n_sl + h.within_service_level),
            ports_cap=c.ports,
            events=tuple(events),
        )
        events.clear()
        n = pacer.decide(snap).dials
        p = p_before if t < drop_t else p_after
        for _ in range(n):
            call = next_call
            next_call += 1
            n_dials += 1
            dialling[call] = t
            u = uniform()
            seq += 1
            if u < p:
                r = ring()
                if r > c.ring_timeout:
                    push(heap, (t + c.ring_timeout, seq, _RESULT, call, _NONE))
                elif uniform2() < c.amd_false_positive:
                    n_fp += 1
                    n_machine += 1
                    push(heap, (t + r + amd(), seq, _RESULT, call, _MACH))
                else:
                    push(heap, (t + r, seq, _ANSWER, call, 0.0))
                continue
            v = (u - p) / (1.0 - p)
            if v < m_cut:
                r = ring()
                if r > c.ring_timeout:
                    push(heap, (t + c.ring_timeout, seq, _RESULT, call, _NONE))
                elif uniform2() < c.amd_false_negative:
                    machine_call.add(call)
                    push(heap, (t + r, seq, _ANSWER, call, 0.0))
                else:
                    n_machine += 1
                    push(heap, (t + r + amd(), seq, _RESULT, call, _MACH))
            elif v < b_cut:
                push(heap, (t + c.busy_s, seq, _RESULT, call, _BUSY))
            elif v < i_cut:
                push(heap, (t + c.invalid_s, seq, _RESULT, call, _INV))
            else:
                push(heap, (t + c.ring_timeout, seq, _RESULT, call, _NONE))
        t += tick

    for s in talking.values():
        busy_time += end - s
    for s in wrapping.values():
        busy_time += end - s
    logged = c.agents * end
    rates = [a / l for a, l in zip(hour_ab, hour_live) if l > 0]
    g = np.asarray(gaps) if gaps else np.zeros(1)
    return ShiftResult(
        occupancy=min(1.0, busy_time / logged),
        idle_gap_mean=float(g.mean()),
        idle_gap_p95=float(np.percentile(g, 95)),
        abandon=n_ab / n_live if n_live else 0.0,
        abandon_uk=(n_ab + n_fp) / (n_live + n_fp) if n_live + n_fp else 0.0,
        worst_hour=max(rates) if rates else 0.0,
        dials_per_agent_hour=n_dials / (c.agents * end / 3600.0),
        dials=n_dials, live=n_live, abandoned=n_ab,
    )

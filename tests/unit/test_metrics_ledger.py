"""The incremental ledger count and the outbox low-water mark, against an in-memory ledger that
behaves as the real one does: a claim reads the business clock, then its transaction runs for a
while; a restricted attempt's row becomes visible when that claim commits, an allowed one's
only when its outcome settles (possibly long after), with `created_at` = the claim's time."""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from api.metrics import SLACK_S, LedgerTally, OutboxMark
from pom_actors.store.metrics import LedgerQuery, LedgerRead, OutboxRead

T0 = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)


@dataclass
class Row:
    key: tuple[int, int]
    created_at: datetime
    labels: tuple[str, str, str, str]


@dataclass
class World:
    """Business time runs `scale` times real time; `now_s` is real seconds since T0."""
    scale: float
    rng: random.Random
    now_s: float = 0.0
    visible: list[Row] = field(default_factory=list)
    open_claims: list[dict] = field(default_factory=list)       # transactions not committed yet
    flying: dict[tuple[int, int], tuple[datetime, float, tuple]] = field(default_factory=dict)
    next_item: int = 0

    def business(self, real_s: float) -> datetime:
        return T0 + timedelta(seconds=real_s * self.scale)

    def step(self, dt: float) -> None:
        """`dt` real seconds pass: claims open and commit, outcomes settle."""
        end = self.now_s + dt
        while self.now_s < end:
            self.now_s += 0.05
            if self.rng.random() < 0.6:                      # a manager starts a cycle
                self.open_claims.append({"at": self.now_s, "ends": self.now_s + self.rng.expovariate(1 / 0.2)
                                         * (20 if self.rng.random() < 0.05 else 1),
                                         "n": self.rng.randint(1, 5)})
            for claim in [c for c in self.open_claims if c["ends"] <= self.now_s]:
                self.open_claims.remove(claim)
                created = self.business(claim["at"])
                for _ in range(claim["n"]):
                    self.next_item += 1
                    key = (self.next_item, 1)
                    channel = self.rng.choice(["call", "sms"])
                    if self.rng.random() < 0.2:
                        self.visible.append(Row(key, created, (channel, "dnc", "restricted", "dnc")))
                    else:                                    # settles later, some very much later
                        settle = self.now_s + self.rng.expovariate(1 / 2.0) * (30 if self.rng.random() < 0.1 else 1)
                        code = self.rng.choice(["answered", "busy", "no_answer"])
                        self.flying[key] = (created, settle, (channel, code, "allowed", "allowed"))
            for key, (created, settle, labels) in list(self.flying.items()):
                if settle <= self.now_s:
                    del self.flying[key]
                    self.visible.append(Row(key, created, labels))

    def oldest_open_s(self) -> float:
        return max([self.now_s - c["at"] for c in self.open_claims] + [0.0])

    def read(self, q: LedgerQuery) -> LedgerRead:
        out = LedgerRead()
        below, above, landed = Counter(), Counter(), Counter()
        pending = set(q.pending)
        for row in self.visible:
            if q.since is None or row.created_at >= q.since:
                (below if row.created_at < q.until else above)[row.labels] += 1
            if row.key in pending:
                landed[row.labels] += 1
        out.below, out.above, out.landed = dict(below), dict(above), dict(landed)
        out.flying = tuple(k for k, (created, _, _) in self.flying.items() if created < q.until)
        return out

    def truth(self) -> Counter:
        return Counter(row.labels for row in self.visible)


def scrape(tally: LedgerTally, world: World) -> LedgerQuery:
    q = tally.query(world.business(world.now_s), world.scale, world.oldest_open_s())
    tally.apply(q, world.read(q))
    return q


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("scale", [1.0, 600.0])
def test_the_tally_equals_the_ledger_at_every_scrape(seed, scale):
    world, tally = World(scale, random.Random(seed)), LedgerTally()
    world.step(3.0)
    previous = Counter()
    for _ in range(60):
        world.step(random.Random(seed + 1000).choice([0.1, 0.5, 1.0, 3.0]))
        scrape(tally, world)
        totals = tally.totals()
        assert totals == world.truth()
        assert all(totals[k] >= n for k, n in previous.items())      # a counter never goes down
        previous = totals
    assert tally.settled and tally.pending                     # both paths were exercised


def test_the_horizon_trails_the_oldest_open_transaction_and_never_moves_back():
    tally = LedgerTally()
    q = tally.query(T0, 600.0, oldest_open_s=2.0)
    assert q.since is None and q.until == T0 - timedelta(seconds=(2.0 + SLACK_S) * 600)
    tally.apply(q, LedgerRead())
    q2 = tally.query(T0, 600.0, oldest_open_s=60.0)           # a long transaction opened meanwhile
    assert q2.since == q.until and q2.until == q.until


def test_each_read_looks_only_past_the_horizon_plus_what_it_awaits():
    tally = LedgerTally()
    first = tally.query(T0, 1.0, 0.0)
    tally.apply(first, LedgerRead(below={("call", "answered", "allowed", "allowed"): 5},
                                  above={("call", "busy", "allowed", "allowed"): 1}, flying=((7, 1),)))
    second = tally.query(T0 + timedelta(seconds=10), 1.0, 0.0)
    assert second.since == first.until and second.pending == ((7, 1),)
    tally.apply(second, LedgerRead(below={("call", "busy", "allowed", "allowed"): 1},
                                   landed={("call", "answered", "allowed", "allowed"): 1}))
    assert tally.totals() == {("call", "answered", "allowed", "allowed"): 6,
                              ("call", "busy", "allowed", "allowed"): 1}
    with pytest.raises(ValueError):
        tally.apply(second, LedgerRead())                     # the same read twice: refused


# -- the outbox low-water mark ------------------------------------------------------------------
def test_the_outbox_mark_waits_for_the_transactions_of_its_proposal():
    mark = OutboxMark()
    # Rows 1-4 visible and published; a transaction (xid 100) holds id 3... rather: ids 1,2,4
    # visible and published, id 3 not yet committed. The read proposes 5.
    mark.apply(OutboxRead(unpublished=0, low_id=5, xmin=100, xmax=102))
    assert mark.low == 0                                      # nothing taken on one read
    # Next read: transaction 100 still running (xmin 100 < 102): the proposal waits.
    mark.apply(OutboxRead(unpublished=0, low_id=5, xmin=100, xmax=103))
    assert mark.low == 0
    # Then 100 commits id 3, unpublished: this read sees it (it scans from 0) and proposes 3.
    mark.apply(OutboxRead(unpublished=1, low_id=3, xmin=104, xmax=104))
    assert mark.low == 3                                      # min(5 proposed, 3 seen now)
    mark.apply(OutboxRead(unpublished=0, low_id=6, xmin=105, xmax=105))
    assert mark.low == 3                                      # 3 was still the proposal before
    mark.apply(OutboxRead(unpublished=0, low_id=6, xmin=106, xmax=106))
    assert mark.low == 6

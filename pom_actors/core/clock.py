"""The one clock of the system (principle 4: time is injected).

Business time (windows, retries, nuisance periods, attempt timestamps) always comes from a
`Clock`. Production uses `SystemClock`; the simulator, tests and benchmarks use `ScaledClock`
so that an hour of campaign time can pass in seconds. A ScaledClock is described by plain
numbers (`spec()`), so every actor process rebuilds the *same* clock from its spec.
Lease expiry is *not* business time: it uses the database's own clock.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC datetime of business time."""

    def real_seconds(self, business_seconds: float) -> float:
        """Real seconds that `business_seconds` of business time take (for sleeps)."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def real_seconds(self, business_seconds: float) -> float:
        return business_seconds

    def wall(self, at: datetime) -> float:
        """The wall-clock time (`time.time()`) at which business time is `at`."""
        return at.timestamp()

    def spec(self) -> dict:
        return {"kind": "system"}


@dataclass(frozen=True)
class ScaledClock:
    """Business time starts at `start` when real time is `real_start` and runs `scale` times faster."""

    start: datetime
    scale: float = 1.0
    real_start: float = 0.0

    @classmethod
    def starting(cls, start: datetime, scale: float) -> "ScaledClock":
        if start.tzinfo is None:
            raise ValueError("clock start must be timezone-aware")
        if scale <= 0:
            raise ValueError("clock scale must be positive")
        return cls(start.astimezone(timezone.utc), scale, time.time())

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.real_start) * self.scale)

    def real_seconds(self, business_seconds: float) -> float:
        return business_seconds / self.scale

    def wall(self, at: datetime) -> float:
        """The wall-clock time (`time.time()`) at which business time is (or was) `at`."""
        return self.real_start + (at - self.start).total_seconds() / self.scale

    def spec(self) -> dict:
        return {"kind": "scaled", "start": self.start.isoformat(), "scale": self.scale,
                "real_start": self.real_start}


class ManualClock:
    """A clock that moves only when told to: for unit tests of time-dependent logic."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("clock start must be timezone-aware")
        self._now = start.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now

    def real_seconds(self, business_seconds: float) -> float:
        return 0.0


def clock_from_spec(spec: dict | None) -> SystemClock | ScaledClock:
    """Rebuild a clock in another process from `Clock.spec()`."""
    if not spec or spec.get("kind") == "system":
        return SystemClock()
    if spec["kind"] == "scaled":
        return ScaledClock(datetime.fromisoformat(spec["start"]), float(spec["scale"]),
                           float(spec["real_start"]))
    raise ValueError(f"unknown clock kind {spec.get('kind')!r}")

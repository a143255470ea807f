"""Next-step logic: where a work item goes after an attempt ended with a completion code.

Pure and deterministic: the Campaign Manager calls `next_step` with the outcome, the time and
the contact's zones, and stores the returned Progress with the work item. Retry counters are
kept per "handler:code" and never reset (a goto back to a handler does not refill them), which
is what makes every retry chain finite.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .strategy import Handler, ResultAction, Strategy
from .windows import next_open, zone_info

_UTC = dt.timezone.utc
_DONE = ResultAction(action="done")
_NEXT_ADDRESS = ResultAction(action="next_address")


@dataclass
class Progress:
    """Where a work item is in its strategy. `attempts` is counted by the caller and carried through."""

    handler: str
    address_index: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    attempts: int = 0


@dataclass
class NextStep:
    done: bool
    progress: Progress
    at: dt.datetime | None
    reason: str


def first_progress(strategy: Strategy) -> Progress:
    return Progress(strategy.initial)


def _present(value: Any) -> bool:
    return value is not None and str(value).strip() != ""


def _address_index(handler: Handler, start: int, contact: Mapping[str, Any]) -> int | None:
    """The first address index >= start whose contact field is not empty."""
    for i in range(start, len(handler.addresses)):
        if _present(contact.get(handler.addresses[i])):
            return i
    return None


def address_for(strategy: Strategy, progress: Progress,
                contact: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(field, value) of the address to use now; empty fields are skipped, (None, None) when none is left."""
    handler = strategy.handlers[progress.handler]
    i = _address_index(handler, progress.address_index, contact)
    if i is None:
        return None, None
    name = handler.addresses[i]
    return name, str(contact[name]).strip()


def next_step(strategy: Strategy, progress: Progress, code: str, now: dt.datetime, zones: Sequence[str],
              contact: Mapping[str, Any] | None = None) -> NextStep:
    """Apply the current handler's result processor for `code` (KeyError if the code is unknown).

    Pass `contact` when some of the handler's address fields may be empty: next_address then
    skips them exactly as `address_for` does, and goes to `otherwise` when none is left.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("`now` must be a timezone-aware datetime")
    flags = strategy.codebook()[code]
    handler = strategy.handlers[progress.handler]
    p = Progress(progress.handler, progress.address_index, dict(progress.retries), progress.attempts)
    if contact is not None:
        used = _address_index(handler, p.address_index, contact)
        p.address_index = p.address_index if used is None else used
    if flags.contact_uncallable:
        return NextStep(True, p, None, f"done {code} (contact uncallable)")
    action = handler.results.get(code)
    if action is None and flags.address_uncallable:
        action = _NEXT_ADDRESS
    action = action or handler.results.get("default") or _DONE
    return _Apply(handler, p, code, now.astimezone(_UTC), zones, contact).run(action)


@dataclass
class _Apply:
    handler: Handler
    p: Progress
    code: str
    now: dt.datetime
    zones: Sequence[str]
    contact: Mapping[str, Any] | None

    def run(self, action: ResultAction) -> NextStep:
        why = ""
        while True:
            step = getattr(self, f"_{action.action}")(action, why)
            if isinstance(step, NextStep):
                return step
            action, why = action.otherwise or _DONE, f"{why}{step}, "

    def _later(self, at: dt.datetime, reason: str, progress: Progress | None = None) -> NextStep:
        return NextStep(False, progress or self.p, at.astimezone(_UTC), reason)

    def _counted(self, action: ResultAction) -> int | None:
        """Take one from the handler:code counter; None when `max` is reached."""
        key = f"{self.p.handler}:{self.code}"
        used = self.p.retries.get(key, 0)
        if action.max is not None and used >= action.max:
            return None
        self.p.retries[key] = used + 1
        return used + 1

    def _done(self, action: ResultAction, why: str) -> NextStep:
        return NextStep(True, self.p, None, f"{why}done {self.code}")

    def _goto(self, action: ResultAction, why: str) -> NextStep:
        target = Progress(action.handler or "", 0, self.p.retries, self.p.attempts)
        return self._later(self.now, f"{why}goto {action.handler}", target)

    def _retry(self, action: ResultAction, why: str) -> NextStep | str:
        n = self._counted(action)
        if n is None:
            return f"{self.code} retries exhausted ({action.max})"
        after = action.after or 0.0
        return self._later(self.now + dt.timedelta(seconds=after),
                           f"{why}retry {self.code} {n}/{action.max} in {after:g}s")

    def _next_address(self, action: ResultAction, why: str) -> NextStep | str:
        following = self.p.address_index + 1
        if self.contact is not None:
            index = _address_index(self.handler, following, self.contact)
        else:
            index = following if following < len(self.handler.addresses) else None
        if index is None:
            return "addresses exhausted"
        self.p.address_index = index
        return self._later(self.now, f"{why}next address {self.handler.addresses[index]}")

    def _wait_until(self, action: ResultAction, why: str) -> NextStep | str:
        if self._counted(action) is None:
            return f"{self.code} waits exhausted ({action.max})"
        assert action.at is not None
        zone = (zone_info(self.zones[0]) if self.zones else None) or _UTC
        local = self.now.astimezone(zone)
        at = dt.datetime.combine(local.date(), action.at, tzinfo=zone)
        if at < self.now:
            at = dt.datetime.combine(local.date() + dt.timedelta(days=1), action.at, tzinfo=zone)
        return self._later(at, f"{why}wait until {action.at:%H:%M} {getattr(zone, 'key', 'UTC')}")

    def _wait_window(self, action: ResultAction, why: str) -> NextStep | str:
        if self._counted(action) is None:
            return f"{self.code} waits exhausted ({action.max})"
        opens = next_open(self.handler.window, self.zones, self.now)
        if opens is None:
            return "window does not open within 14 days"
        return self._later(opens, f"{why}wait for the contact window")

"""How one work item moves through its strategy: the decisions of the manager's hot path.

The manager claims items (store.work), asks the rule engine, and then, per batch, calls
`plan()` to turn each (item, verdict) into an attempt row, an order for the media gateway (if
allowed) and the item's new state; when an outcome comes back, `settle()` applies the
strategy's result processor and `AttemptRow.complete` finishes the ledger row. Pure
functions: no Ray, no database, time passed in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .nextstep import NextStep, Progress, address_for, next_step
from .orders import Order
from .rules import ALLOWED, Candidate, Verdict
from .strategy import Strategy
from .templates import render
from .windows import zones_for

CONTACT_FIELDS = ("external_id", "first_name", "last_name", "phone1", "phone2", "email")


@dataclass(slots=True)
class Item:
    """A claimed work item and its contact, as the manager holds it while it is in flight."""
    id: int
    job_id: int
    contact_id: int
    shard: int
    handler: str
    address_index: int
    retries: dict[str, int]
    address_attempts: dict[str, int]
    attempts: int
    last_code: str | None
    contact: dict[str, Any]
    zones: tuple[str, ...] = ()
    address_field: str | None = None
    address: str | None = None

    @property
    def progress(self) -> Progress:
        return Progress(self.handler, self.address_index, dict(self.retries), self.attempts)

    @property
    def attempt_id(self) -> str:
        return f"{self.id}.{self.attempts}"


@dataclass(slots=True)
class ItemUpdate:
    """The new state of a work item leaving flight, written back in one batched UPDATE."""
    id: int
    state: str                      # scheduled | done
    next_at: datetime
    handler: str
    address_index: int
    retries: dict[str, int]
    address_attempts: dict[str, int]
    attempts: int
    last_code: str | None


@dataclass(slots=True)
class AttemptRow:
    """One ledger row. A restricted attempt's is complete at birth; an allowed one's waits in
    the manager (its intent is on the work item) until the outcome completes it."""
    work_item_id: int
    attempt_no: int
    job_id: int
    campaign_id: int
    contact_id: int
    shard: int
    epoch: int
    handler: str
    channel: str
    address: str | None
    verdict: str
    rule: str
    reason: str
    gateway: str | None
    code: str | None
    created_at: datetime
    completed_at: datetime | None
    details: dict[str, Any] = field(default_factory=dict)

    def complete(self, code: str, at: datetime, details: dict[str, Any]) -> "AttemptRow":
        self.code, self.completed_at, self.details = code, at, details
        return self


@dataclass(slots=True)
class Planned:
    """An allowed attempt has an order (its item stays as the claim left it: in flight); a
    restricted one has the item's next step and its update instead."""
    attempt: AttemptRow
    order: Order | None = None             # when the attempt is allowed
    update: ItemUpdate | None = None


@dataclass(slots=True)
class Settled:
    update: ItemUpdate
    step: NextStep


def make_item(row: dict[str, Any], strategy: Strategy) -> Item:
    """An Item from a claimed row (work item columns + contact columns), address resolved;
    `attempts` is, for a fresh claim, the count before this attempt and, for an item found in
    flight (reconciliation), the number of the attempt in flight."""
    contact = dict(row.get("attributes") or {})
    for name in CONTACT_FIELDS:
        contact[name] = row.get(name)
    item = Item(id=row["id"], job_id=row["job_id"], contact_id=row["contact_id"], shard=row["shard"],
                handler=row["handler"], address_index=row["address_index"],
                retries=dict(row["retries"] or {}), address_attempts=dict(row["address_attempts"] or {}),
                attempts=row["attempts"], last_code=row["last_code"], contact=contact)
    item.address_field, item.address = address_for(strategy, item.progress, contact)
    phone = item.address if strategy.handlers[item.handler].type in ("call", "sms") else \
        (contact.get("phone1") or contact.get("phone2"))
    item.zones = tuple(zones_for(row.get("timezones") or None, phone))
    return item


def candidate(item: Item, strategy: Strategy, campaign_id: int) -> Candidate:
    handler = strategy.handlers[item.handler]
    return Candidate(key=item.id, campaign_id=campaign_id, contact_id=item.contact_id,
                     channel=handler.type, address=item.address, zones=item.zones,
                     window=handler.window, attempts_contact=sum(item.address_attempts.values()),
                     attempts_address=item.address_attempts.get(item.address_field or "", 0),
                     last_code=item.last_code)


def plan(item: Item, verdict: Verdict, strategy: Strategy, *, campaign_id: int, epoch: int,
         gateway: str, reply_to: str, now: datetime) -> Planned:
    """Attempt row, order and new item state for one claimed item and its rule verdict."""
    handler = strategy.handlers[item.handler]
    allowed = verdict.allowed
    item.attempts += 1
    row = _row(item, handler.type, campaign_id, epoch, "allowed" if allowed else "restricted",
               verdict.rule, verdict.reason, gateway if allowed else None, now)
    if not allowed:
        row.complete(verdict.code, now, {})
        step = next_step(strategy, item.progress, verdict.code, now, item.zones, item.contact)
        return Planned(row, update=_after(item, step, verdict.code, now))
    order = Order(attempt_id=item.attempt_id, job_id=item.job_id, shard=item.shard, epoch=epoch,
                 channel=handler.type, address=item.address, reply_to=reply_to,
                 message=render(handler.message or "", item.contact),
                 subject=render(handler.subject or "", item.contact),
                 sender=handler.caller_id or handler.sender or "", url=handler.url or "",
                 method=handler.method, headers=dict(handler.headers), timeout=handler.timeout,
                 retries=handler.retries, ring_timeout=handler.ring_timeout,
                 payload={"contact_id": item.contact_id, "job_id": item.job_id, **item.contact}
                 if handler.type == "custom" else {},
                 bridge=handler.agent_based)     # preview too: the agent who accepted its card
    return Planned(row, order=order)


def in_flight_row(item: Item, strategy: Strategy, *, campaign_id: int, epoch: int, gateway: str,
                  at: datetime) -> AttemptRow:
    """The pending ledger row of an allowed attempt found in flight (`item.attempts` is its
    number), rebuilt from the intent on its work item when a new holder adopts it."""
    return _row(item, strategy.handlers[item.handler].type, campaign_id, epoch, "allowed", ALLOWED, ALLOWED,
                gateway, at)


def _row(item: Item, channel: str, campaign_id: int, epoch: int, verdict: str, rule: str, reason: str,
         gateway: str | None, at: datetime) -> AttemptRow:
    return AttemptRow(item.id, item.attempts, item.job_id, campaign_id, item.contact_id, item.shard, epoch,
                      item.handler, channel, item.address, verdict, rule, reason, gateway, None, at, None)


def settle(item: Item, code: str, strategy: Strategy, now: datetime) -> Settled:
    """Apply the strategy's result processor for the outcome of the item's in-flight attempt
    (which now counts against its address)."""
    step = next_step(strategy, item.progress, code, now, item.zones, item.contact)
    if item.address_field:
        item.address_attempts[item.address_field] = item.address_attempts.get(item.address_field, 0) + 1
    return Settled(_after(item, step, code, now), step)


def resend(item: Item, at: datetime) -> ItemUpdate:
    """An attempt whose order provably never reached a gateway: the item is due again at `at`
    as it was; the attempt number stays spent (the ledger row keeps its code `cancelled`)."""
    return ItemUpdate(item.id, "scheduled", at, item.handler, item.address_index, dict(item.retries),
                      dict(item.address_attempts), item.attempts, item.last_code)


def _after(item: Item, step: NextStep, code: str, now: datetime) -> ItemUpdate:
    if step.done:
        return ItemUpdate(item.id, "done", now, item.handler, item.address_index, dict(item.retries),
                          dict(item.address_attempts), item.attempts, code)
    p = step.progress
    return ItemUpdate(item.id, "scheduled", step.at, p.handler, p.address_index, dict(p.retries),
                      dict(item.address_attempts), item.attempts, code)

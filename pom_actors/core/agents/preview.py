"""A preview card's life, from the contact shown to an agent to the call dialled or not.

A preview job hands the contact to the agent first. The Campaign Manager claims the contact
(the attempt's intent is on its work item) and holds its order; the Agent Manager reserves a
ready agent of the job for the card (call id = card id = attempt id) and shows it. The card
then ends exactly once:

    shown --accept--> accepted       the order is dispatched; the call is bridged to that agent
    shown --skip(code)--> skipped    not dialled: settled per the strategy with the skip code
    shown --time-out--> timed_out    the strategy's `on_timeout`: dial anyway, or settle `timeout`
    shown --cancel--> cancelled      the agent logged off, went not ready or lost its desktop, or
                                     the card was lost (a restart): the contact is returned

The Agent Manager holds the `Card`s and is the one authority on how each ends (an accept racing
the time-out is decided in one place); the Campaign Manager learns the `Answer`s and
`HeldOrders` turns them into orders to dispatch and outcomes to settle. Pure: times passed in.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from ..orders import Order, Outcome
from .desk import DispositionError

SKIPPED = "skipped"          # the system completion code of a skipped card (core/codes.py)
TIMED_OUT = "timeout"        # ... of a card nobody answered, when the strategy does not dial it
CANCELLED = "cancelled"      # ... of a card withdrawn: the order never left (the contact is returned)
ON_TIMEOUT = ("dial", "skip")


class CardState(StrEnum):
    SHOWN = "shown"
    ACCEPTED = "accepted"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class Card:
    """A card shown to agent `agent_id` (reserved for it) for manager `owner` of job `job_id`."""

    card_id: str
    agent_id: int
    job_id: int
    owner: str | None
    shown_at: datetime
    timeout_s: float | None = None
    on_timeout: str = "dial"
    skip_codes: tuple[str, ...] = (SKIPPED,)
    state: CardState = CardState.SHOWN

    @property
    def expires_at(self) -> datetime | None:
        return None if self.timeout_s is None else self.shown_at + timedelta(seconds=self.timeout_s)

    @property
    def open(self) -> bool:
        return self.state == CardState.SHOWN

    @property
    def dialled(self) -> bool:
        """Its call is placed (accepted, or timed out with `on_timeout` dial)."""
        return self.state == CardState.ACCEPTED or (self.state == CardState.TIMED_OUT and self.on_timeout == "dial")


@dataclass(frozen=True, slots=True)
class Answer:
    """How a card ended, as its Campaign Manager learns it."""

    card_id: str
    agent_id: int
    answer: str                  # accept | skip | timeout | cancelled
    dial: bool                   # the call is placed and put through to `agent_id`
    code: str | None             # the completion code of a card not dialled
    at: datetime
    shown_s: float
    reason: str | None = None    # a cancel's cause

    def as_dict(self) -> dict[str, Any]:
        return {"card_id": self.card_id, "agent_id": self.agent_id, "answer": self.answer, "dial": self.dial,
                "code": self.code, "at": self.at, "shown_s": self.shown_s, "reason": self.reason}


def _end(card: Card, state: CardState, answer: str, now: datetime, code: str | None = None,
         reason: str | None = None) -> Answer:
    if not card.open:
        raise DispositionError("card_id", f"preview card {card.card_id!r} is {card.state}, not waiting for an answer")
    card.state = state
    return Answer(card.card_id, card.agent_id, answer, card.dialled, code, now,
                  max(0.0, (now - card.shown_at).total_seconds()), reason)


def accept(card: Card, now: datetime) -> Answer:
    return _end(card, CardState.ACCEPTED, "accept", now)


def skip(card: Card, now: datetime, code: str | None = None) -> Answer:
    """The agent passes; `code` must be one of the card's skip codes (None: the first)."""
    if code is not None and code not in card.skip_codes:
        raise DispositionError("code", f"unknown skip code {code!r}; allowed: {', '.join(card.skip_codes)}")
    return _end(card, CardState.SKIPPED, "skip", now, code or card.skip_codes[0])


def expire(card: Card, now: datetime) -> Answer | None:
    """The time-out, if it has come for an open card: dial anyway or settle as `timeout`."""
    if not card.open or card.expires_at is None or now < card.expires_at:
        return None
    return _end(card, CardState.TIMED_OUT, "timeout", now, None if card.on_timeout == "dial" else TIMED_OUT)


def cancel(card: Card, now: datetime, reason: str) -> Answer:
    return _end(card, CardState.CANCELLED, "cancelled", now, CANCELLED, reason)


def outcome(answer: Mapping[str, Any]) -> Outcome | None:
    """What the attempt of a card not dialled completes with (None: it is dialled). A skip or
    an undialled time-out is settled per the strategy; a cancel never left: the contact is
    due again (`not_sent`, core/reconcile.py)."""
    if answer["dial"]:
        return None
    details = {"card": answer["answer"], "card_agent": answer["agent_id"], "shown_s": round(answer["shown_s"], 3)}
    if answer["answer"] == "cancelled":
        details.update(not_sent=True, reason=answer.get("reason"))
    return Outcome(answer["card_id"], answer["code"], answer["at"], details)


@dataclass
class HeldOrders:
    """A Campaign Manager's preview contacts: each claimed contact's order held back until its
    card is answered. `queued` cards wait for a ready agent, `shown` ones for its answer;
    `dialled` are the calls placed for an agent who holds them (released if the call is not
    answered)."""

    queued: dict[str, tuple[Order, dict[str, Any]]] = field(default_factory=dict)
    shown: dict[str, Order] = field(default_factory=dict)
    dialled: set[str] = field(default_factory=set)
    ready: int = 0                                 # ready agents of the job, as last told

    def __len__(self) -> int:
        return len(self.queued) + len(self.shown)

    def hold(self, order: Order, card: dict[str, Any]) -> None:
        self.queued[order.attempt_id] = (order, card)

    def wanted(self, managers: int = 1) -> int:
        """Contacts to claim now: this manager's share of the job's ready agents, rounded up
        (so that no manager of a small team starves: a card more waits in a queue at worst),
        less the cards already waiting for one."""
        return max(0, -(-self.ready // managers) - len(self.queued))

    def placed(self, offered: Mapping[str, int | None]) -> None:
        """The cards the Agent Manager showed (card -> agent; None: no agent was ready)."""
        for card_id, agent in offered.items():
            if agent is not None and card_id in self.queued:
                self.shown[card_id] = self.queued.pop(card_id)[0]

    def answered(self, answers: Mapping[str, Mapping[str, Any]]) -> tuple[list[Order], list[Outcome], list[str]]:
        """The orders to dispatch, the outcomes to settle and the strays (accepted cards this
        manager does not hold, e.g. after its restart: their agents are to be released)."""
        dial, settle, strays = [], [], []
        for card_id, answer in answers.items():
            order = self.shown.pop(card_id, None)
            if order is None:
                if answer["dial"]:
                    strays.append(card_id)
                continue
            done = outcome(answer)
            if done is None:
                dial.append(order)
                self.dialled.add(card_id)
            else:
                settle.append(done)
        return dial, settle, strays

    def forget(self, attempt_ids: Iterable[str]) -> None:
        """Attempts no longer this manager's (a shard lost): not offered, and an accept of a
        card already shown comes back as a stray (its new holder returns the contact)."""
        for aid in attempt_ids:
            self.queued.pop(aid, None)
            self.shown.pop(aid, None)

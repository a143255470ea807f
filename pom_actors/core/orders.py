"""What crosses between a campaign manager and a media gateway: orders in; outcomes,
refusals and order records out.

Plain slotted dataclasses: they cross Ray actor calls in batches of thousands (`core.wire`),
so they are cheap to build and to pack; and the reconciler decides over them without Ray.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

CHANNELS = ("call", "sms", "email", "custom")
PENDING, COMPLETED = "pending", "completed"


@dataclass(slots=True)
class Order:
    """One attempt on one address, as the manager sends it to a gateway."""

    attempt_id: str  # "<work_item_id>.<attempt_no>", unique forever
    job_id: int
    shard: int
    epoch: int
    channel: str  # "call" | "sms" | "email" | "custom"
    address: str  # E.164 phone, e-mail address, or the custom handler's address value
    reply_to: str  # the manager that wants the outcome; outcomes are queued per reply_to
    message: str = ""  # call: TTS prompt; sms text; e-mail body; custom: in the JSON payload
    subject: str = ""  # e-mail
    sender: str = ""  # caller id / SMS from / e-mail from
    url: str = ""  # custom webhook url
    method: str = "POST"
    headers: dict = field(default_factory=dict)
    timeout: float = 10.0
    retries: int = 0
    ring_timeout: float = 15.0
    payload: dict = field(default_factory=dict)  # extra contact data for webhooks
    bridge: bool = False  # call: answered by a person, it waits for an agent (core/agents/bridge.py)


@dataclass(slots=True)
class Outcome:
    """How an attempt ended. `at` is business time (aware UTC) from the gateway's clock.
    `details` is read-only: the voice simulator's instant mode shares one dict."""

    attempt_id: str
    code: str
    at: datetime
    details: dict = field(default_factory=dict)
    job_id: int = 0
    shard: int = 0
    epoch: int = 0


@dataclass(slots=True)
class Refusal:
    """An order the gateway did not take: it was never sent anywhere."""

    attempt_id: str
    reason: str  # "duplicate attempt id" | "stale epoch 3 < 4" | "unknown channel 'x'"


@dataclass(slots=True)
class OrderRecord:
    """A gateway's record of one attempt id it received: pending, or completed with how."""

    attempt_id: str
    state: str  # PENDING | COMPLETED
    epoch: int
    code: str | None = None
    at: datetime | None = None
    details: dict = field(default_factory=dict)


def outcome_for(order: Order, code: str, at: datetime, details: dict) -> Outcome:
    """The outcome of `order`, carrying its fencing coordinates back to the manager."""
    return Outcome(order.attempt_id, code, at, details, order.job_id, order.shard, order.epoch)

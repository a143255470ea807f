"""The gateway's vocabulary: orders in, outcomes and refusals out, plus the HTTP retry loop
the SMS and webhook drivers share.

Orders and outcomes are plain slotted dataclasses because they cross Ray actor calls in
batches of thousands: cheap to build, cheap to pickle.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

import httpx

CHANNELS = ("call", "sms", "email", "custom")


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


def outcome_for(order: Order, code: str, at: datetime, details: dict) -> Outcome:
    """The outcome of `order`, carrying its fencing coordinates back to the manager."""
    return Outcome(order.attempt_id, code, at, details, order.job_id, order.shard, order.epoch)


@dataclass(slots=True)
class HttpResult:
    """What the last try of an HTTP exchange produced (a response, or why there was none)."""

    tries: int
    response: httpx.Response | None = None
    timed_out: bool = False
    error: str = ""


async def send_with_retry(client: httpx.AsyncClient, method: str, url: str, *, retries: int,
                          timeout: float, backoff_s: float, backoff_max_s: float,
                          retry_response: Callable[[httpx.Response], bool],
                          **request: Any) -> HttpResult:
    """Send, and on a timeout, a transport error or a response `retry_response` calls
    transient, send again up to `retries` more times after a bounded exponential backoff
    (backoff_s, 2*backoff_s, ... capped at backoff_max_s; real seconds, since it waits on
    the remote side, not on business time). `request` goes to `client.request` as is."""
    tries = 0
    while True:
        tries += 1
        result = HttpResult(tries)
        try:
            result.response = await client.request(method, url, timeout=timeout, **request)
            if not retry_response(result.response):
                return result
        except httpx.TimeoutException as exc:
            result.timed_out, result.error = True, f"{type(exc).__name__}: {exc}".rstrip(": ")
        except httpx.HTTPError as exc:
            result.error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if tries > retries:
            return result
        await asyncio.sleep(min(backoff_max_s, backoff_s * 2 ** (tries - 1)))


def http_details(result: HttpResult) -> dict:
    """The details every HTTP-driven outcome carries."""
    details: dict = {"tries": result.tries}
    if result.response is not None:
        details["http_status"] = result.response.status_code
    if result.error:
        details["error"] = result.error
    return details

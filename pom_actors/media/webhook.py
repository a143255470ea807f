"""Custom handlers: an HTTP webhook per attempt, whose answer becomes the completion code.

The request is `order.method` to `order.url` with `order.headers`; the body (query string
for GET) carries the attempt id, job, address, rendered message and the contact data in
`order.payload`. Each try waits at most `order.timeout` seconds; timeouts, connection errors
and 5xx answers without a code are retried `order.retries` times with bounded exponential
backoff. The mapping of the last answer:

| webhook answer                                          | code                             |
|---------------------------------------------------------|----------------------------------|
| JSON body {"code": "<known completion code>"}, any status | that code                      |
| JSON body {"code": "<unknown code>"}                    | webhook_failed (details.unknown_code) |
| 2xx without a code                                      | delivered                        |
| 1xx/3xx/4xx without a code                              | webhook_failed                   |
| 5xx or connection error, after the retries              | webhook_failed                   |
| timeout, after the retries                              | timeout                          |
| a URL the outbound policy refuses (not requested)       | webhook_failed (details.error)   |

The outbound policy (core/outbound.py, POM_OUTBOUND_ALLOW) is checked before each order,
against every address the URL's host resolves to then.
"""
from __future__ import annotations

import json
from typing import Container

import httpx

from pom_actors.core.clock import Clock
from pom_actors.core.orders import Order, Outcome, outcome_for
from pom_actors.core.outbound import OutboundPolicy, Resolver, system_resolver
from pom_actors.media.base import HttpResult, http_details, send_with_retry


def answered_code(response: httpx.Response) -> str | None:
    """The "code" a webhook answered with, if its body is a JSON object naming one."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def webhook_code(result: HttpResult, known: Container[str]) -> tuple[str, dict]:
    """The completion code of a webhook exchange's last try, and its details."""
    details = http_details(result)
    response = result.response
    if response is None:
        return ("timeout" if result.timed_out else "webhook_failed"), details
    answered = answered_code(response)
    if answered is not None:
        if answered in known:
            return answered, details
        details["unknown_code"] = answered
        return "webhook_failed", details
    return ("delivered" if response.is_success else "webhook_failed"), details


class WebhookDriver:
    def __init__(self, clock: Clock, known_codes: Container[str], *, backoff_s: float = 0.5,
                 backoff_max_s: float = 8.0, max_connections: int = 50,
                 policy: OutboundPolicy | None = None, resolve: Resolver = system_resolver):
        """`known_codes`: the completion codes a webhook may answer with. `max_connections`
        as for SmsDriver: the caller's concurrency bound. `policy`: where requests may go
        (default: public addresses only); `resolve`: host name to addresses."""
        self._clock, self._known = clock, known_codes
        self._policy, self._resolve = policy or OutboundPolicy(), resolve
        self._backoff_s, self._backoff_max_s = backoff_s, backoff_max_s
        self._client = httpx.AsyncClient(limits=httpx.Limits(max_connections=max_connections))

    async def deliver(self, order: Order) -> Outcome:
        refused = await self._policy.resolve_fault(order.url, self._resolve)
        if refused is not None:
            return outcome_for(order, "webhook_failed", self._clock.now(),
                               {"error": f"refused by the outbound policy: {refused}"})
        data = {"attempt_id": order.attempt_id, "job_id": order.job_id,
                "address": order.address, "message": order.message}
        method = order.method.upper()
        if method == "GET":
            request = {"params": {**order.payload, **data}}
        else:
            request = {"json": {**data, "contact": order.payload}}
        result = await send_with_retry(
            self._client, method, order.url, headers=order.headers, retries=order.retries,
            timeout=order.timeout, backoff_s=self._backoff_s, backoff_max_s=self._backoff_max_s,
            retry_response=lambda r: r.status_code >= 500 and answered_code(r) is None,
            **request)
        code, details = webhook_code(result, self._known)
        return outcome_for(order, code, self._clock.now(), details)

    async def close(self) -> None:
        await self._client.aclose()

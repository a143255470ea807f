"""SMS through an HTTP SMS gateway (the common shape of SMS providers' REST APIs).

POST {url} with JSON {"to", "from", "text", "reference"} (reference = attempt id, so the
provider's records can be matched to ours), authenticated by a bearer token or basic auth.
The provider's answer maps to a completion code:

| provider answer                                              | code           |
|--------------------------------------------------------------|----------------|
| 2xx                                                          | delivered      |
| 400 whose body says the number is invalid (see INVALID_NUMBER) | invalid_number |
| any other 4xx (and 1xx/3xx)                                  | sms_failed     |
| 5xx or connection error, after the retries                   | sms_failed     |
| timeout, after the retries                                   | timeout        |

Only 5xx, timeouts and connection errors are retried: a 4xx would fail the same way again.
"""
from __future__ import annotations

import re

import httpx

from pom_actors.core.clock import Clock
from pom_actors.core.orders import Order, Outcome, outcome_for
from pom_actors.media.base import HttpResult, http_details, send_with_retry

# "invalid_number", "Invalid number", "invalid phone number", "INVALID-NUMBER", ...
INVALID_NUMBER = re.compile(r"invalid[ _-]?(phone[ _-]?)?number", re.IGNORECASE)


def sms_code(result: HttpResult) -> str:
    """The completion code of an SMS exchange's last try."""
    response = result.response
    if response is None:
        return "timeout" if result.timed_out else "sms_failed"
    if response.is_success:
        return "delivered"
    if response.status_code == 400 and INVALID_NUMBER.search(response.text):
        return "invalid_number"
    return "sms_failed"


class SmsDriver:
    def __init__(self, clock: Clock, url: str, *, token: str | None = None,
                 user: str | None = None, password: str | None = None, timeout: float = 10.0,
                 retries: int = 2, backoff_s: float = 0.5, backoff_max_s: float = 8.0,
                 max_connections: int = 50):
        """A bearer `token` wins over `user`/`password` basic auth; neither means no auth.
        `max_connections` should match the caller's concurrency bound, so that no request
        ever waits for a pooled connection (that wait would count against its timeout)."""
        self._clock, self._url = clock, url
        self._timeout, self._retries = timeout, retries
        self._backoff_s, self._backoff_max_s = backoff_s, backoff_max_s
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        auth = httpx.BasicAuth(user, password or "") if user and not token else None
        self._client = httpx.AsyncClient(headers=headers, auth=auth,
                                         limits=httpx.Limits(max_connections=max_connections))

    async def deliver(self, order: Order) -> Outcome:
        body = {"to": order.address, "from": order.sender, "text": order.message,
                "reference": order.attempt_id}
        result = await send_with_retry(
            self._client, "POST", self._url, json=body, retries=self._retries,
            timeout=self._timeout, backoff_s=self._backoff_s, backoff_max_s=self._backoff_max_s,
            retry_response=lambda r: r.status_code >= 500)
        return outcome_for(order, sms_code(result), self._clock.now(), http_details(result))

    async def close(self) -> None:
        await self._client.aclose()

"""The HTTP retry loop the SMS and webhook drivers share (orders, outcomes and refusals
are `core.orders`)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable

import httpx


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

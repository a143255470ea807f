"""Idempotency keys (`Idempotency-Key` header) on the requests that must not run twice when a
client retries (job creation and start, import creation): what a request with a key gets,
given what is stored under that key. Plain decisions; SQL in store/idempotency.py, the HTTP
side in api/idempotency.py.

The same key with the same request (method, path, query, body and caller: `fingerprint`)
gets the first answer again; with a different request, a refusal (422); while the first is
still being answered, 409. A key is kept `TTL_S` after its first use, then forgotten.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

TTL_S = 24 * 3600.0
KEY = re.compile(r"^[\x21-\x7e]{1,200}$")          # printable ASCII, no spaces, 1..200 characters
MAX_STORED_ANSWER = 64 * 1024                       # bytes: a larger answer is not kept (the key is released)


class Verdict(StrEnum):
    RUN = "run"                 # a new key (or an expired one): run the request, keep its answer
    REPLAY = "replay"           # the same request again: send the kept answer
    MISMATCH = "mismatch"       # the key was used for another request: 422
    IN_PROGRESS = "in_progress"  # the first request with this key is not answered yet: 409


@dataclass(frozen=True, slots=True)
class Stored:
    fingerprint: str
    status: int | None          # None while the first request runs
    expires_at: datetime


def key_fault(key: str) -> str | None:
    """Why `key` is not a usable idempotency key, or None."""
    return None if KEY.match(key) else "must be 1 to 200 printable ASCII characters without spaces"


def fingerprint(method: str, path: str, query: bytes, caller: str, body_digest: str) -> str:
    return hashlib.sha256(b"\x00".join([method.encode(), path.encode(), query, caller.encode(),
                                        body_digest.encode()])).hexdigest()


def decide(stored: Stored | None, request_fingerprint: str, now: datetime) -> Verdict:
    if stored is None or stored.expires_at <= now:
        return Verdict.RUN
    if stored.fingerprint != request_fingerprint:
        return Verdict.MISMATCH
    return Verdict.IN_PROGRESS if stored.status is None else Verdict.REPLAY

"""Idempotency keys in SQL (`idempotency_keys`; the decisions are core/idempotency.py).

`claim` is one transaction: the key's row locked (or inserted), the verdict taken on it, and
for a new or expired key the row (re)written as running — so two requests with one key at
once cannot both run."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..core.idempotency import TTL_S, Stored, Verdict, decide

PURGE_BATCH = 100


def claim(conn: psycopg.Connection, scope: str, key: str, fingerprint: str) -> tuple[Verdict, int | None, Any]:
    """(verdict, kept status, kept answer) for a request with `key` on `scope` (its route)."""
    for _ in range(3):              # a row released between our insert and our read: again
        with conn.transaction():
            now = conn.execute("SELECT now()").fetchone()[0]
            expires = now + timedelta(seconds=TTL_S)
            if conn.execute("INSERT INTO idempotency_keys (scope, key, fingerprint, expires_at) VALUES (%s, %s, %s, %s) "
                            "ON CONFLICT DO NOTHING RETURNING 1", (scope, key, fingerprint, expires)).fetchone():
                conn.execute("DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys "
                             "WHERE expires_at < %s LIMIT %s))", (now, PURGE_BATCH))
                return Verdict.RUN, None, None
            row = conn.execute("SELECT fingerprint, status, answer, expires_at FROM idempotency_keys "
                               "WHERE scope = %s AND key = %s FOR UPDATE", (scope, key)).fetchone()
            if row is None:
                continue
            verdict = decide(Stored(row[0], row[1], row[3]), fingerprint, now)
            if verdict == Verdict.RUN:          # expired: taken over
                conn.execute("UPDATE idempotency_keys SET fingerprint = %s, status = NULL, answer = NULL, "
                             "created_at = %s, expires_at = %s WHERE scope = %s AND key = %s",
                             (fingerprint, now, expires, scope, key))
            return verdict, row[1], row[2]
    return Verdict.IN_PROGRESS, None, None


def complete(conn: psycopg.Connection, scope: str, key: str, status: int, answer: Any) -> None:
    """Keep the first answer (a JSON document) under the key."""
    conn.execute("UPDATE idempotency_keys SET status = %s, answer = %s WHERE scope = %s AND key = %s",
                 (status, Jsonb(answer), scope, key))


def release(conn: psycopg.Connection, scope: str, key: str) -> None:
    """Forget a key whose request failed or whose answer is not kept: a retry runs again."""
    conn.execute("DELETE FROM idempotency_keys WHERE scope = %s AND key = %s", (scope, key))

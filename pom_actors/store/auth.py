"""API tokens and the audit log in SQL (core.tokens holds what a token is and how it is hashed).

Every function takes an open psycopg connection; those that must see a consistent set of
tokens (the first admin token, revoking an admin) take a transaction-scoped advisory lock
themselves, so two gateways starting or revoking at once cannot both act on a stale count.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..core.tokens import NewToken, Principal, Role, hash_token, new_token, same_hash
from .catalog import NotFound

TOKEN_LOCK = 0x504F4D_0001          # pg_advisory_xact_lock key of token creation and revocation
TOKEN_COLUMNS = "id, name, role, prefix, agent_id, created_at, revoked_at"
AUDIT_COLUMNS = ("id, at, token_id, token_name, role, method, path, route, resource, resource_id, "
                 "status, summary")
MAX_AUDIT_PAGE = 1000


class LastAdmin(RuntimeError):
    """Revoking this token would leave no admin token: nobody could manage tokens any more."""


def create_token(conn: psycopg.Connection, name: str, role: Role | str, agent_id: int | None = None,
                 token: NewToken | None = None) -> tuple[dict[str, Any], str]:
    """A new token: (its row, its value). The value is not kept anywhere: show it once."""
    token = token or new_token()
    row = conn.cursor(row_factory=dict_row).execute(
        f"INSERT INTO api_tokens (name, role, token_hash, prefix, agent_id) VALUES (%s, %s, %s, %s, %s) "
        f"RETURNING {TOKEN_COLUMNS}", (name, str(Role(role)), token.hash, token.prefix, agent_id)).fetchone()
    return row, token.value


def tokens(conn: psycopg.Connection, *, role: str | None = None, revoked: bool | None = None, after: int = 0,
           limit: int | None = None) -> list[dict[str, Any]]:
    """Tokens by id above `after`, at most `limit` (never their hashes): of `role` if given,
    only the revoked (`revoked=True`) or the others (False) if given, else both."""
    where, params = ["id > %s"], [after]
    if role is not None:
        where, params = where + ["role = %s"], params + [role]
    if revoked is not None:
        where.append("revoked_at IS NOT NULL" if revoked else "revoked_at IS NULL")
    return conn.cursor(row_factory=dict_row).execute(
        f"SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE {' AND '.join(where)} ORDER BY id LIMIT %s",
        (*params, limit)).fetchall()


def principal(conn: psycopg.Connection, value: str) -> Principal | None:
    """Who holds the token `value`, if it is a token not revoked."""
    digest = hash_token(value)
    row = conn.execute("SELECT id, name, role, prefix, agent_id, token_hash FROM api_tokens "
                       "WHERE token_hash = %s AND revoked_at IS NULL", (digest,)).fetchone()
    if row is None or not same_hash(row[5], digest):
        return None
    try:
        role = Role(row[2])
    except ValueError:                 # a role this version does not know grants nothing
        return None
    return Principal(row[0], row[1], role, row[3], row[4])


def revoke_token(conn: psycopg.Connection, token_id: int) -> datetime:
    """Revoke a token (again: no change); returns when it was revoked. NotFound if there is no
    such token; LastAdmin if it is the last admin token not revoked."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (TOKEN_LOCK,))
        row = conn.execute("SELECT role, revoked_at FROM api_tokens WHERE id = %s", (token_id,)).fetchone()
        if row is None:
            raise NotFound(f"token {token_id} does not exist")
        role, revoked_at = row
        if revoked_at is not None:
            return revoked_at
        if role == Role.ADMIN and active_admins(conn) <= 1:
            raise LastAdmin(f"token {token_id} is the last admin token: create another admin token first")
        return conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE id = %s RETURNING revoked_at",
                            (token_id,)).fetchone()[0]


def active_admins(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM api_tokens WHERE role = %s AND revoked_at IS NULL",
                        (str(Role.ADMIN),)).fetchone()[0]


def first_admin_token(conn: psycopg.Connection, name: str = "admin (first start)") -> str | None:
    """An admin token if the database has no admin token that is not revoked (its value), else
    None. Gateways starting together create one between them."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (TOKEN_LOCK,))
        if active_admins(conn):
            return None
        return create_token(conn, name, Role.ADMIN)[1]


# -- the audit log ------------------------------------------------------------------------------
def write_audit(conn: psycopg.Connection, entry: Mapping[str, Any]) -> int:
    """Append one entry (keys: the columns of `audit_log` but id and at)."""
    return conn.execute(
        "INSERT INTO audit_log (token_id, token_name, role, method, path, route, resource, resource_id, "
        "status, summary) VALUES (%(token_id)s, %(token_name)s, %(role)s, %(method)s, %(path)s, %(route)s, "
        "%(resource)s, %(resource_id)s, %(status)s, %(summary)s) RETURNING id",
        {**entry, "summary": Jsonb(entry.get("summary") or {})}).fetchone()[0]


def audit(conn: psycopg.Connection, *, after: int | None = None, limit: int = 100,
          since: datetime | None = None, until: datetime | None = None, token_id: int | None = None,
          path_prefix: str | None = None, method: str | None = None) -> list[dict[str, Any]]:
    """Entries by id, oldest first: those after id `after`, at or after `since`, before
    `until`, made with token `token_id`, on a path starting with `path_prefix`, with `method`;
    at most `limit` (1..MAX_AUDIT_PAGE). The next page is `after=` the last id."""
    where, params = ["TRUE"], []
    if after is not None:
        where.append("id > %s")
        params.append(after)
    if since is not None:
        where.append("at >= %s")
        params.append(since)
    if until is not None:
        where.append("at < %s")
        params.append(until)
    if token_id is not None:
        where.append("token_id = %s")
        params.append(token_id)
    if path_prefix:
        where.append("starts_with(path, %s)")
        params.append(path_prefix)
    if method:
        where.append("method = %s")
        params.append(method.upper())
    params.append(max(1, min(limit, MAX_AUDIT_PAGE)))
    return conn.cursor(row_factory=dict_row).execute(
        f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {' AND '.join(where)} ORDER BY id LIMIT %s",
        params).fetchall()

"""Who may call what: bearer tokens, roles per route, and the audit log of every change.

**Tokens** (`pom_actors.core.tokens`): `Authorization: Bearer pom_...` on every request (a
WebSocket may pass it as `?token=` instead, since browsers cannot set headers on one).
`authenticate` hashes it and looks it up (`store/auth.py`); a token it found is kept in a
per-app cache (`TokenCache`: 5 s, 1024 tokens, least recently used out) so that a request
costs no database round trip. A revoked token therefore stops working at once on the gateway
process that revoked it (its cache entry is dropped) and within 5 s on every other one.

**Roles**: every route carries an `Access` dependency — `Allow(read=..., write=...)` (roles
for GET/HEAD and for every other method), or `Public(reason)` for the few routes open by
design — applied per router in `api/app.py`, and narrowed per route where a router mixes
roles. tests/unit/test_auth_routes.py walks `app.routes` and fails for any route without one.
No token or a bad one: 401 with `WWW-Authenticate: Bearer`; a role not allowed: 403.

**Audit** (`AuditTrail`, an ASGI middleware): every request other than GET/HEAD/OPTIONS that an
authenticated caller made and that succeeded (status < 400) is appended to `audit_log` —
who (token id, name, role), what (method, path, route template, resource, id, a summary of
the request: path and query parameters and the body, long values cut and secrets masked),
when — before the last byte of the answer is sent.

**Test hook**: `for_tests(app, role)` makes an app accept one token of that role (the real
`authenticate` and role checks run; only the token lookup is replaced through
`app.dependency_overrides[token_directory]`) and keeps audit entries in a list; it returns
the headers to send.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import anyio
from fastapi import Depends, FastAPI
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection
from starlette.status import WS_1008_POLICY_VIOLATION

from pom_actors.core.tokens import (ROLES, Principal, Role, admin_token_path, hash_token, plausible,
                                    read_token_file, write_token_file)

from .errors import Forbidden, Unauthorized, raises

log = logging.getLogger(__name__)

CACHE_TTL_S = 5.0
CACHE_SIZE = 1024
AUDIT_KEY = "pom.audit"              # the ASGI scope key of a request's AuditContext
AUDIT_BODY_BYTES = 64 * 1024         # a body larger than this is summarised by its size only
WS_TOKEN_PARAM = "token"             # a WebSocket's token, when it sends no Authorization header
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

ALL = frozenset(ROLES)
STAFF = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION})        # read every resource
DEFINE = frozenset({Role.ADMIN, Role.INTEGRATION})                        # create definitions, jobs
OPERATE = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.INTEGRATION})      # job control, run-time changes
ADMIN = frozenset({Role.ADMIN})
OVERSEE = frozenset({Role.ADMIN, Role.SUPERVISOR})                        # the audit log
AGENTS = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.AGENT})             # agent routes (its own state)
INTEGRATE = frozenset({Role.ADMIN, Role.INTEGRATION})                     # web services for external apps

bearer = HTTPBearer(auto_error=False, description="an API token: `pom tokens create`, or the admin "
                                                  "token in <POM_DATA_DIR>/admin-token")


# -- the token cache ----------------------------------------------------------------------------
class TokenCache:
    """Verified tokens by hash, for `ttl_s` seconds, at most `size` of them (LRU). Only tokens
    found are kept: a wrong token is looked up each time, and cannot push good ones out."""

    def __init__(self, ttl_s: float = CACHE_TTL_S, size: int = CACHE_SIZE,
                 clock: Callable[[], float] = time.monotonic):
        self.ttl_s, self.size, self.clock = ttl_s, size, clock
        self._items: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> Principal | None:
        with self._lock:
            found = self._items.get(digest)
            if found is None:
                return None
            if found[0] <= self.clock():
                del self._items[digest]
                return None
            self._items.move_to_end(digest)
            return found[1]

    def put(self, digest: str, principal: Principal) -> None:
        with self._lock:
            self._items[digest] = (self.clock() + self.ttl_s, principal)
            self._items.move_to_end(digest)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def forget(self, token_id: int) -> None:
        """Drop a token (revoked here): the other gateway processes follow within `ttl_s`."""
        with self._lock:
            for digest in [d for d, (_, p) in self._items.items() if p.token_id == token_id]:
                del self._items[digest]


# -- authentication -----------------------------------------------------------------------------
Lookup = Callable[[str], "Principal | None"]


def token_directory(conn: HTTPConnection) -> Lookup:
    """How a token value is looked up: in `api_tokens`, over the app's pool for its own
    bookkeeping (one query on the token's hash; unit tests override this dependency)."""
    from pom_actors.store import auth as store

    pool = conn.app.state.side_pool

    def lookup(value: str) -> Principal | None:
        with pool.connection() as db:
            return store.principal(db, value)

    return lookup


def _refuse(conn: HTTPConnection, message: str, invalid: bool) -> Exception:
    if conn.scope["type"] == "websocket":
        return WebSocketException(WS_1008_POLICY_VIOLATION, message)
    return Unauthorized(message, invalid)


@raises(401)
async def authenticate(conn: HTTPConnection,
                       credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                       lookup: Lookup = Depends(token_directory)) -> Principal:
    """The caller, from its bearer token; 401 (a WebSocket: closed with 1008) without a token
    or with one that is unknown or revoked."""
    value = credentials.credentials if credentials else None
    if value is None and conn.scope["type"] == "websocket":
        value = conn.query_params.get(WS_TOKEN_PARAM)
    if not value:
        raise _refuse(conn, "an API token is required (Authorization: Bearer <token>)", False)
    if not plausible(value):
        raise _refuse(conn, "the API token is not valid", True)
    cache: TokenCache = conn.app.state.token_cache
    digest = hash_token(value)
    principal = cache.get(digest)
    if principal is None:
        principal = await run_in_threadpool(lookup, value)
        if principal is None:
            raise _refuse(conn, "the API token is not valid (unknown or revoked)", True)
        cache.put(digest, principal)
    return principal


@raises(401)
async def maybe_authenticate(conn: HTTPConnection,
                             credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                             lookup: Lookup = Depends(token_directory)) -> Principal | None:
    """The caller if a token was sent (a bad one is still 401), else None."""
    if credentials is None and not (conn.scope["type"] == "websocket" and conn.query_params.get(WS_TOKEN_PARAM)):
        return None
    return await authenticate(conn, credentials, lookup)


# -- access rules -------------------------------------------------------------------------------
class Access(ABC):
    """What every route must carry (tests walk `app.routes` for it)."""

    @abstractmethod
    def roles(self, method: str) -> frozenset[Role] | None:
        """The roles allowed `method`; None: anyone, without a token."""


class Allow(Access):
    """Roles allowed to read (GET, HEAD; a WebSocket) and to change (every other method).
    Several on one route (the router's, then the route's) must all allow the caller."""

    problems = (403,)

    def __init__(self, read: Iterable[Role] = (), write: Iterable[Role] | None = None):
        self.read = frozenset(read) | {Role.ADMIN}
        self.write = (self.read if write is None else frozenset(write)) | {Role.ADMIN}

    def roles(self, method: str) -> frozenset[Role]:
        return self.read if method in READ_METHODS or method == "WEBSOCKET" else self.write

    async def __call__(self, conn: HTTPConnection, principal: Principal = Depends(authenticate)) -> Principal:
        method = conn.scope.get("method", "WEBSOCKET")
        if principal.role not in self.roles(method):
            if conn.scope["type"] == "websocket":
                raise WebSocketException(WS_1008_POLICY_VIOLATION, f"role {principal.role} may not use this")
            raise Forbidden(f"a token of role {principal.role} may not {method} {conn.url.path}")
        context = conn.scope.get(AUDIT_KEY)
        if context is not None:
            context.principal = principal
        return principal

    def __repr__(self) -> str:
        return f"Allow(read={sorted(self.read)}, write={sorted(self.write)})"


class Public(Access):
    """Open without a token, by design (`reason` says why; docs/api.md lists these routes)."""

    def __init__(self, reason: str):
        self.reason = reason

    def roles(self, method: str) -> None:
        return None

    async def __call__(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"Public({self.reason!r})"


def allow(read: Iterable[Role] = (), write: Iterable[Role] | None = None) -> Any:
    """`Depends(Allow(...))`, for `include_router(dependencies=[...])` and route decorators."""
    return Depends(Allow(read, write))


def public(reason: str) -> Any:
    return Depends(Public(reason))


# -- the audit log ------------------------------------------------------------------------------
class AuditContext:
    __slots__ = ("principal",)

    def __init__(self):
        self.principal: Principal | None = None


def db_audit_writer(app: FastAPI) -> Callable[[dict], None]:
    from pom_actors.store import auth as store

    def write(entry: dict) -> None:
        with app.state.side_pool.connection() as db:     # never the requests' (app.py)
            store.write_audit(db, entry)

    return write


_SECRET_WORDS = ("password", "secret", "token", "authorization", "credential")


def _summary_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:200] + f"… ({len(value)} characters)"
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, list):
        if len(value) <= 10 and depth < 2 and all(not isinstance(v, (dict, list)) for v in value):
            return [_summary_value(v, depth + 1) for v in value]
        return f"[{len(value)} items]"
    if isinstance(value, dict):
        if depth >= 2 or len(value) > 30:
            return f"{{{len(value)} keys}}"
        return {k: ("***" if any(w in k.lower() for w in _SECRET_WORDS) else _summary_value(v, depth + 1))
                for k, v in value.items()}
    return str(value)[:200]


def summarise_body(body: bytes, complete: bool, size: int) -> Any:
    """What the audit keeps of a request body: the JSON with long values cut, large arrays and
    deep objects counted, keys naming a secret masked; else its size."""
    if not size:
        return None
    if complete:
        try:
            return _summary_value(json.loads(body))
        except (ValueError, RecursionError):
            pass
    return {"bytes": size}


def route_template(scope) -> str:
    """The path template of the route that answered (`/api/v1/jobs/{job_id}/pause`): the
    route's own path (without the prefixes of the routers that include it), after the
    segments of the request's path it does not cover."""
    path = scope["path"]
    own = getattr(scope.get("route"), "path", None)
    if not own:
        return path
    have, tail = path.rstrip("/").split("/"), own.strip("/").split("/")
    if len(tail) > len(have) or any("{" not in t and t != h for t, h in zip(tail[::-1], have[::-1])):
        return own
    return "/".join(have[:len(have) - len(tail)] + tail) or "/"


def _resource(route: str) -> str:
    from .app import API_PREFIX

    rest = route[len(API_PREFIX):] if route.startswith(API_PREFIX + "/") else route
    return next((part for part in rest.split("/") if part), "")


class AuditTrail:
    """ASGI middleware: appends an `audit_log` entry for each change that succeeded (see the
    module's docstring). The entry is written, through `app.state.audit_writer`, before the
    last part of the answer leaves; a failure to write it is logged, the answer still sent."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in READ_METHODS:
            await self.app(scope, receive, send)
            return
        context = scope[AUDIT_KEY] = AuditContext()
        body, size = bytearray(), 0
        status: list[int] = []
        answer = bytearray()

        async def tee_receive():
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= AUDIT_BODY_BYTES:
                    body.extend(chunk)
            return message

        async def tee_send(message):
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif message["type"] == "http.response.body" and status and status[0] < 400 \
                    and context.principal is not None:
                if len(answer) < 4096:
                    answer.extend(message.get("body", b"")[:4096])
                if not message.get("more_body", False):
                    entry = self.entry(scope, context.principal, status[0], bytes(body),
                                       size <= AUDIT_BODY_BYTES, size, bytes(answer))
                    writer = scope["app"].state.audit_writer
                    try:
                        await anyio.to_thread.run_sync(writer, entry)
                    except Exception:
                        log.exception("audit entry not written: %s", entry)
            await send(message)

        await self.app(scope, tee_receive, tee_send)

    @staticmethod
    def entry(scope, principal: Principal, status: int, body: bytes, complete: bool, size: int,
              answer: bytes) -> dict:
        route = route_template(scope)
        params = {k: str(v) for k, v in (scope.get("path_params") or {}).items()}
        resource_id = next(iter(params.values()), None)
        summary: dict[str, Any] = {}
        if params:
            summary["params"] = params
        if scope.get("query_string"):
            from urllib.parse import parse_qsl

            summary["query"] = {k: _summary_value(v) for k, v in
                                parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)}
        described = summarise_body(body, complete, size)
        if described is not None:
            summary["body"] = described
        if resource_id is None and status == 201:
            try:
                created = json.loads(answer)
                if isinstance(created, dict) and created.get("id") is not None:
                    resource_id = str(created["id"])
            except ValueError:
                pass
        return {"token_id": principal.token_id or None, "token_name": principal.name,
                "role": str(principal.role), "method": scope["method"], "path": scope["path"],
                "route": route, "resource": _resource(route), "resource_id": resource_id,
                "status": status, "summary": summary}


def install(app: FastAPI) -> None:
    """The token cache, the audit writer and the audit middleware of `app`."""
    app.state.token_cache = TokenCache()
    app.state.audit_writer = db_audit_writer(app)
    app.add_middleware(AuditTrail)


# -- first start --------------------------------------------------------------------------------
def first_start(database_url: str, data_dir: str) -> str:
    """At `pom run`: an admin token if the database has no admin token, written to
    `<data_dir>/admin-token` (0600). Says where the token is, never the token itself."""
    from pom_actors.store import auth as store
    from pom_actors.store.database import connect

    path = admin_token_path(data_dir)
    with connect(database_url, autocommit=True) as db:
        held = read_token_file(path)
        if held is not None and plausible(held):
            found = store.principal(db, held)
            if found is not None and found.role == Role.ADMIN:
                return f"admin token: {path} (or set POM_TOKEN)"
        value = store.first_admin_token(db)
    if value is not None:
        write_token_file(path, value)
        return f"admin token created in {path} (mode 0600): `pom` and the Python client read it from there, or set POM_TOKEN"
    return (f"admin token: the database has admin tokens but {path} holds none of them; "
            f"set POM_TOKEN (an admin creates tokens with `pom tokens create`)")


# -- the test hook ------------------------------------------------------------------------------
def for_tests(app: FastAPI, role: Role | str = Role.ADMIN, *, agent_id: int | None = None) -> dict[str, str]:
    """Test hook: `app` accepts one token of `role` (the real authentication and role checks
    run; the lookup is replaced) and keeps its audit entries in `app.state.audit_entries`.
    Returns the headers to send (`TestClient(app, headers=auth.for_tests(app))`)."""
    tokens: dict[str, Principal] = getattr(app.state, "test_tokens", None) or {}
    value = f"pom_test-{role}-{agent_id or 0}"
    tokens[value] = Principal(len(tokens) + 1, f"test {role}", Role(role), value[:12], agent_id)
    app.state.test_tokens = tokens
    app.dependency_overrides[token_directory] = lambda: tokens.get
    if not hasattr(app.state, "audit_entries"):
        app.state.audit_entries = []
        app.state.audit_writer = app.state.audit_entries.append
    return {"Authorization": f"Bearer {value}"}


# -- what every route requires ------------------------------------------------------------------
def route_rules(app: FastAPI) -> list[tuple[str, str, list[Access]]]:
    """(method, path, the Access rules of its dependencies) for every route and method of
    `app` ("WEBSOCKET" for a WebSocket route; FastAPI's own documentation routes have none)."""
    from fastapi.routing import APIWebSocketRoute, iter_route_contexts

    out = []
    for ctx in iter_route_contexts(app.routes):
        dependant = getattr(ctx, "dependant", None)
        rules: list[Access] = []
        stack = [dependant] if dependant is not None else []
        while stack:
            node = stack.pop()
            if isinstance(node.call, Access):
                rules.append(node.call)
            stack.extend(node.dependencies)
        websocket = isinstance(ctx.original_route, APIWebSocketRoute)
        for method in sorted({"WEBSOCKET"} if websocket else (ctx.methods or set()) - {"HEAD"}):
            out.append((method, ctx.path, rules))
    return out


def allowed_roles(rules: list[Access], method: str) -> frozenset[Role] | None:
    """The roles all of `rules` allow `method` (None: open to anyone, no token needed)."""
    sets = [r.roles(method) for r in rules]
    if not sets or all(s is None for s in sets):
        return None
    out = ALL
    for s in sets:
        if s is not None:
            out &= s
    return out

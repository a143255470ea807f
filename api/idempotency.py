"""`Idempotency-Key` on the requests a client must be able to retry safely: job creation, job
start, import creation (`ROUTES`). A pure ASGI middleware inside the body limit: it reads the
body (spooled to disk past 1 MiB, so an import upload costs no memory) and hashes it with the
method, path, query and caller into a fingerprint, then asks the key store (core/idempotency.py
decides, store/idempotency.py keeps):

* a new key: the request runs; a 2xx answer is kept a day (any other answer, or one over 64 KiB,
  releases the key, so a retry runs again);
* the same key and request again: the kept answer, with `Idempotent-Replayed: true`;
* the same key with another request: `422 invalid` at `header.Idempotency-Key`;
* the same key while its first request is still running: `409 conflict`.

A request without the header is passed through untouched. `app.state.idempotency` is the key
store (unit tests put an in-memory one there).
"""
from __future__ import annotations

import hashlib
import json
import re
import tempfile
from typing import Any

import anyio
from fastapi import Depends, Header
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pom_actors.core.idempotency import KEY, MAX_STORED_ANSWER, Verdict, fingerprint, key_fault

from .errors import ErrorResponse, problem

HEADER = b"idempotency-key"
ROUTES = re.compile(r"/api/v1/(jobs|jobs/[0-9]+/start|(dnc-)?lists/[0-9]+/imports)")
SPOOL_BYTES = 1 << 20


def _declared(idempotency_key: str | None = Header(
        None, alias="Idempotency-Key", pattern=KEY.pattern,
        description="retry safely: the same key and request get the first answer again (docs/api.md)")) -> None:
    """Declares the header in OpenAPI; the middleware does the work."""


KEYED = Depends(_declared)          # `dependencies=[KEYED]` on each route of ROUTES


class SqlKeys:
    """The key store over the app's pool for its own bookkeeping (app.py; blocking: called in a
    thread)."""

    def __init__(self, pool):
        self.pool = pool

    def claim(self, scope: str, key: str, print_: str) -> tuple[Verdict, int | None, Any]:
        from pom_actors.store import idempotency as store

        with self.pool.connection() as db:
            return store.claim(db, scope, key, print_)

    def complete(self, scope: str, key: str, status: int, answer: Any) -> None:
        from pom_actors.store import idempotency as store

        with self.pool.connection() as db:
            store.complete(db, scope, key, status, answer)

    def release(self, scope: str, key: str) -> None:
        from pom_actors.store import idempotency as store

        with self.pool.connection() as db:
            store.release(db, scope, key)


def _boundary(scope: Scope) -> bytes:
    """The multipart boundary of the request (b"" for another body)."""
    kind = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    found = re.search(rb"boundary=\"?([^\";]+)", kind) if kind.startswith(b"multipart/") else None
    return found.group(1) if found else b""


def body_digest(body, boundary: bytes) -> str:
    """SHA-256 of a body with its multipart boundary taken out: a client sends a new random
    boundary with each retry of the same upload. Streams; a boundary across blocks is found."""
    digest, carry = hashlib.sha256(), b""
    keep = max(len(boundary) - 1, 0)
    while block := body.read(SPOOL_BYTES):
        data = carry + block
        if boundary:
            data = data.replace(boundary, b"")
        cut = max(len(data) - keep, 0)
        digest.update(data[:cut])
        carry = data[cut:]
    digest.update(carry)
    body.seek(0)
    return digest.hexdigest()


def _refusal(status: int, error: str, detail: str, **extensions: Any) -> ErrorResponse:
    return ErrorResponse(status_code=status, content=problem(status, error, detail, **extensions))


class Idempotency:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = None
        if scope["type"] == "http" and scope["method"] == "POST" and ROUTES.fullmatch(scope["path"]):
            key = next((v for k, v in scope["headers"] if k == HEADER), None)
        if key is None:
            await self.app(scope, receive, send)
            return
        key = key.decode("latin-1")
        if (reason := key_fault(key)) is not None:
            errors = [{"path": "header.Idempotency-Key", "message": reason}]
            await _refusal(422, "invalid", f"header.Idempotency-Key: {reason}", errors=errors)(scope, receive, send)
            return
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":       # gone, or cut by the body limit (413 sent)
                    return
                body.write(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body.seek(0)
            digest = await anyio.to_thread.run_sync(body_digest, body, _boundary(scope))
            auth = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            caller = hashlib.sha256(auth).hexdigest()
            print_ = fingerprint("POST", scope["path"], scope.get("query_string", b""), caller, digest)
            where = f"POST {scope['path']}"
            keys = scope["app"].state.idempotency
            verdict, status, answer = await anyio.to_thread.run_sync(keys.claim, where, key, print_)
            if verdict == Verdict.MISMATCH:
                message = "this Idempotency-Key was used for another request (method, path, query, body or token)"
                errors = [{"path": "header.Idempotency-Key", "message": message}]
                await _refusal(422, "invalid", f"header.Idempotency-Key: {message}", errors=errors)(scope, receive, send)
            elif verdict == Verdict.IN_PROGRESS:
                await _refusal(409, "conflict", "the first request with this Idempotency-Key is still being "
                                                "answered; try again")(scope, receive, send)
            elif verdict == Verdict.REPLAY:
                await _replay(status, answer, send)
            else:
                await self._run(scope, body, send, keys, where, key)

    async def _run(self, scope: Scope, body, send: Send, keys, where: str, key: str) -> None:
        sent = False

        async def replay_body() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            chunk = body.read(SPOOL_BYTES)
            more = len(chunk) == SPOOL_BYTES
            sent = not more
            return {"type": "http.request", "body": chunk, "more_body": more}

        status: list[int] = []
        answer = bytearray()
        kept = False

        async def tee_send(message: Message) -> None:
            nonlocal kept
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif message["type"] == "http.response.body" and len(answer) <= MAX_STORED_ANSWER:
                answer.extend(message.get("body", b""))
                # kept before the last byte leaves: a client retrying at once finds the answer
                if not message.get("more_body", False) and 200 <= status[0] < 300 \
                        and len(answer) <= MAX_STORED_ANSWER:
                    try:
                        document = json.loads(answer) if answer else None
                    except ValueError:
                        pass
                    else:
                        await anyio.to_thread.run_sync(keys.complete, where, key, status[0], document)
                        kept = True
            await send(message)

        try:
            await self.app(scope, replay_body, tee_send)
        finally:
            if not kept:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(keys.release, where, key)


async def _replay(status: int, answer: Any, send: Send) -> None:
    payload = b"" if answer is None else json.dumps(answer, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
               (b"idempotent-replayed", b"true")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})

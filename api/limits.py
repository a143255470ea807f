"""The request-body limit: a pure ASGI middleware that counts the bytes of a request body and
answers `413` with a problem document (api/errors.py) once they exceed the limit (`POM_MAX_BODY_BYTES`, 10 MiB).

A declared `Content-Length` over the limit is refused before the app runs. A body without one
(chunked) is counted as it arrives: when it crosses the limit the middleware sends the 413
itself, tells the app the client went away (`http.disconnect`), and drops whatever the app
answers after that. Nothing beyond the limit is ever read into memory.
"""
from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import PROBLEM_JSON, problem


class BodyLimit:
    """`larger`: (compiled path pattern, limit) pairs for routes that take bigger bodies (file
    uploads of imports); every other path has `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int, larger: tuple = ()):
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.app = app
        self.max_bytes = max_bytes
        self.larger = tuple(larger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = next((n for pattern, n in self.larger if pattern.fullmatch(scope.get("path", ""))),
                     self.max_bytes)
        if limit != self.max_bytes:
            await BodyLimit(self.app, limit)(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return

        received = 0
        cut = False            # the body crossed the limit: the app hears a disconnect
        refused = False        # ... and we answered 413, so the app's answer is dropped
        started = False

        async def receive_limited() -> Message:
            nonlocal received, cut, refused
            if cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    cut = True
                    if not started:
                        refused = True
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def send_unless_refused(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive_limited, send_unless_refused)
        except Exception:
            if not refused:    # after our 413, what the cut-off app raised is of no interest
                raise

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(problem(413, "too_large", f"request body larger than {self.max_bytes} bytes")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", PROBLEM_JSON.encode()),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None

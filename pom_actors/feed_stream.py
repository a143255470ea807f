"""The Agent Manager's change feed streamed to the gateways over a socket of its own.

Why not a Ray call: the feed is the screen pop's last hop before the desktop, and a long poll
over Ray (`changes` answered, then asked again) costs each answer the actor reply's path
through both processes' Ray threads, and a new call after it — about a hundred a second at
100 answered calls a second, each waking four threads in two processes. Here the Agent Manager
writes each answer on the gateway's connection as soon as the feed has it, and the gateway's
event loop reads it straight off the socket.

The answers are exactly `AgentManagerService.changes`' (cursor, reset, frames), so the hub
(api/agent_hub.py) keeps its cursor, resets and resyncs as before: the server side keeps one
`changes` long poll per connection, each answer's cursor the next poll's; with nothing new it
still answers every `HEARTBEAT_S` (no frames), so a gateway knows a silent connection for a
dead one. A connection ends with the Agent Manager's process, and the gateway opens another
with its cursor (the restarted feed's new incarnation answers `reset`).

**Who may connect.** The server listens on the address of the node Ray runs the actor on (the
same interface as Ray's own ports; `POM_AGENT_FEED_PORT`, or a free port) and serves only a client whose first message carries the
secret `address()` returned — and only a Ray caller gets that. A client's first message is
bounded (`HELLO_MAX` bytes, `HELLO_TIMEOUT_S`).

**Wire.** Each message is a 4-byte big-endian length and that many bytes of JSON (orjson: the
frames' datetimes go as ISO 8601, as the desktops get them anyway).
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

HEARTBEAT_S = 2.0               # an answer at least this often, frames or not
GRACE_S = 3.0                   # a client gives up on a connection silent past the heartbeat
                                # (a server lost with its node sends no FIN: found within 5 s)
HELLO_MAX = 4096                # bytes of a client's first message
HELLO_TIMEOUT_S = 5.0
ANSWER_MAX = 256 * 2**20        # bytes of one answer (at most `changes`' 10,000 frames)

Changes = Callable[[str | None, float], Awaitable[dict[str, Any]]]


def write_message(writer: asyncio.StreamWriter, message: Any) -> None:
    body = orjson.dumps(message)
    writer.write(len(body).to_bytes(4, "big") + body)


async def read_message(reader: asyncio.StreamReader, max_bytes: int) -> Any:
    """The next message; ValueError for one over `max_bytes` or not JSON,
    asyncio.IncompleteReadError when the connection ends."""
    size = int.from_bytes(await reader.readexactly(4), "big")
    if size > max_bytes:
        raise ValueError(f"a feed message of {size} bytes (at most {max_bytes})")
    return orjson.loads(await reader.readexactly(size))


class FeedServer:
    """Serves `changes` (the Agent Manager's long poll) to gateways, one stream each;
    `clients` connected now and connections `refused` are in the Agent Manager's status."""

    def __init__(self, changes: Changes, host: str, port: int = 0, heartbeat_s: float = HEARTBEAT_S):
        self.changes, self.host, self.port, self.heartbeat_s = changes, host, port, heartbeat_s
        self.secret = secrets.token_urlsafe(24)
        self.clients = 0
        self.refused = 0
        self._server: asyncio.Server | None = None

    async def address(self) -> dict[str, Any]:
        """Where to connect, and the secret to open with (the server starts at the first ask)."""
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        return {"host": self.host, "port": self._server.sockets[0].getsockname()[1], "secret": self.secret}

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A connection error ends the stream quietly: the gateway reconnects with its cursor.
        with contextlib.closing(writer), contextlib.suppress(OSError):
            try:
                hello = await asyncio.wait_for(read_message(reader, HELLO_MAX), HELLO_TIMEOUT_S)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                hello = None
            if not isinstance(hello, dict) or not isinstance(hello.get("secret"), str) \
                    or not hmac.compare_digest(hello["secret"].encode(), self.secret.encode()):
                self.refused += 1
                return
            cursor = hello.get("cursor") if isinstance(hello.get("cursor"), str) else None
            self.clients += 1
            try:
                timeout_s = 0.0                     # the first answer at once: the position
                while True:
                    answer = await self.changes(cursor, timeout_s)
                    write_message(writer, answer)
                    await writer.drain()            # a gateway that does not read holds only its own poll
                    cursor, timeout_s = answer["cursor"], self.heartbeat_s
            finally:
                self.clients -= 1


class FeedStream:
    """The gateway's end: `changes(cursor, timeout_s)` as the hub asks it, read off one
    connection (the server's heartbeat, not `timeout_s`, bounds the wait). A cursor other than
    the last answer's (the first ask, a retry after a failure) opens a new connection from it;
    a failure or a connection silent past the heartbeat closes it and is raised (the hub
    retries)."""

    def __init__(self, address: Callable[[], Awaitable[dict[str, Any]]], heartbeat_s: float = HEARTBEAT_S):
        self.address, self.heartbeat_s = address, heartbeat_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._cursor: str | None = None

    async def changes(self, cursor: str | None, timeout_s: float) -> dict[str, Any]:
        try:
            if self._reader is None or cursor is None or cursor != self._cursor:
                await self._open(cursor)
            answer = await asyncio.wait_for(read_message(self._reader, ANSWER_MAX), self.heartbeat_s + GRACE_S)
        except BaseException:
            self.close()
            raise
        self._cursor = answer["cursor"]
        return answer

    async def _open(self, cursor: str | None) -> None:
        self.close()
        where = await self.address()
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(where["host"], where["port"]), HELLO_TIMEOUT_S)
        write_message(self._writer, {"secret": where["secret"], "cursor": cursor})

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

"""The change feed streamed to a gateway over a loopback socket (pom_actors/feed_stream.py):
answers in order at once, heartbeats, the secret, bounded hellos, and a connection lost and
opened again from the hub's cursor (an Agent Manager restart answering `reset`)."""
from __future__ import annotations

import asyncio

import pytest

from pom_actors import feed_stream as fs
from tests.unit.test_agent_manager_service import Floor


def serve(scenario, heartbeat_s: float = fs.HEARTBEAT_S) -> None:
    """`scenario(floor, server)` against a feed server of one agent's floor, on loopback."""
    f = Floor(1)

    async def main():
        server = fs.FeedServer(lambda *a: f.svc.changes(*a), "127.0.0.1", heartbeat_s=heartbeat_s)   # f.svc after a restart
        try:
            await scenario(f, server)
        finally:
            server.close()

    asyncio.run(asyncio.wait_for(main(), 10))


async def raw(server: fs.FeedServer, data: bytes) -> bytes:
    """What a client that sends `data` (and nothing more) reads back."""
    where = await server.address()
    reader, writer = await asyncio.open_connection(where["host"], where["port"])
    writer.write(data)
    if data:
        writer.write_eof()
    try:
        return await reader.read()
    finally:
        writer.close()


async def connect(server: fs.FeedServer, secret: str | None = None) -> tuple[fs.FeedStream, list]:
    asked = []

    async def address():
        where = await server.address()
        asked.append(where)
        return {**where, "secret": secret or where["secret"]}

    return fs.FeedStream(address), asked


def test_answers_stream_in_order_as_the_feed_has_them():
    async def scenario(f, server):
        stream, asked = await connect(server)
        first = await stream.changes(None, 0)
        assert first == {"cursor": f.svc.cursor, "reset": False, "frames": []}
        waiter = asyncio.create_task(stream.changes(first["cursor"], 10))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        f.svc.desk("a0", "login")
        got = await waiter
        assert loop.time() - t0 < 0.5 and [x["event"] for x in got["frames"]] == ["login"]
        f.svc.desk("a0", "ready")
        f.svc.desk("a0", "not_ready", reason="break")
        seen = []
        cursor = got["cursor"]
        while len(seen) < 2:                    # one answer or two, as the server's poll woke
            answer = await stream.changes(cursor, 10)
            seen += answer["frames"]
            cursor = answer["cursor"]
        assert [x["state"] for x in seen] == ["ready", "not_ready"] and cursor == f.svc.cursor
        assert isinstance(seen[0]["at"], str)                 # ISO 8601, as the desktops get it
        assert len(asked) == 1 and server.clients == 1        # one connection all along
        stream.close()

    serve(scenario)


def test_a_silent_feed_still_answers_every_heartbeat():
    async def scenario(f, server):
        stream, _ = await connect(server)
        first = await stream.changes(None, 0)
        beat = await stream.changes(first["cursor"], 10)
        assert beat == {"cursor": first["cursor"], "reset": False, "frames": []}

    serve(scenario, heartbeat_s=0.05)


def test_a_stream_lost_is_raised_and_the_next_ask_opens_another_from_the_cursor():
    async def scenario(f, server):
        stream, asked = await connect(server)
        cursor = (await stream.changes(None, 0))["cursor"]
        stream._writer.transport.abort()                       # the connection breaks
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await stream.changes(cursor, 10)
        f.svc.desk("a0", "login")                              # while no connection is open
        again = await stream.changes(cursor, 10)
        assert [x["event"] for x in again["frames"]] == ["login"] and len(asked) == 2
        f.restart()                                            # a new incarnation: a reset
        stream._writer.transport.abort()
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await stream.changes(again["cursor"], 10)
        reset = await stream.changes(again["cursor"], 10)
        assert reset["reset"] and reset["cursor"] == f.svc.cursor and reset["frames"] == []

    serve(scenario)


def framed(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


@pytest.mark.parametrize("hello", [framed(b"hello"), b"\xff\xff\xff\xff", framed(b"{}"), framed(b"[1]"),
                                   framed(b'{"secret": "no"}'), framed(b'{"secret": 7}'), b"\x00\x00"])
def test_a_client_without_the_secret_gets_nothing(hello):
    async def scenario(f, server):
        assert await raw(server, hello) == b""               # closed, not one byte of the feed
        assert server.refused == 1 and server.clients == 0

    serve(scenario)


def test_the_wrong_secret_is_refused_through_the_client_too():
    async def scenario(f, server):
        stream, _ = await connect(server, secret="guess")
        with pytest.raises(asyncio.IncompleteReadError):
            await stream.changes(None, 0)
        assert server.refused == 1

    serve(scenario)


def test_a_silent_hello_is_dropped_after_its_time(monkeypatch):
    monkeypatch.setattr(fs, "HELLO_TIMEOUT_S", 0.05)

    async def scenario(f, server):
        assert await asyncio.wait_for(raw(server, b""), 2) == b""
        assert server.refused == 1

    serve(scenario)


def test_an_answer_over_the_bound_is_refused_by_the_client():
    async def scenario():
        reader = asyncio.StreamReader()
        reader.feed_data((fs.ANSWER_MAX + 1).to_bytes(4, "big"))
        with pytest.raises(ValueError, match="bytes"):
            await fs.read_message(reader, fs.ANSWER_MAX)

    asyncio.run(scenario())


def test_the_port_configured_is_the_port_served():
    from tests.integration.ports import free_port

    port = free_port()

    async def scenario():
        server = fs.FeedServer(Floor(1).svc.changes, "127.0.0.1", port)
        try:
            assert (await server.address())["port"] == port
        finally:
            server.close()

    asyncio.run(scenario())


def test_a_connection_silent_past_the_heartbeat_is_given_up(monkeypatch):
    """A server lost with its node sends no FIN: the client gives up on the silence and the
    next ask opens a new connection."""
    monkeypatch.setattr(fs, "GRACE_S", 0.05)

    async def scenario():
        async def mute(reader, writer):
            await reader.read()                 # takes the hello, answers nothing

        server = await asyncio.start_server(mute, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        opened = []

        async def address():
            opened.append(1)
            return {"host": "127.0.0.1", "port": port, "secret": "s"}

        stream = fs.FeedStream(address, heartbeat_s=0.05)
        with pytest.raises(asyncio.TimeoutError):
            await stream.changes(None, 0)
        assert stream._reader is None
        with pytest.raises(asyncio.TimeoutError):
            await stream.changes("x:1", 10)
        assert len(opened) == 2
        server.close()

    asyncio.run(asyncio.wait_for(scenario(), 5))

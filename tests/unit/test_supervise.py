"""The stop signals of `pom run`, the reaping of the sessions it started, and its console riding
out a database restart (no Ray, no database: the real thing is in
tests/integration/test_signals.py)."""
from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time
import types

import psycopg
import pytest
import uvicorn

from api.cli import _drain_report, _port_taken, _serving
from api.console import watch
from pom_actors.supervise import STOP_SIGNALS, SessionWatchdog, StopSignals, reap_sessions, session_members


@pytest.fixture
def handlers():
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=lambda s: s.name)
def test_each_stop_signal_asks_for_a_stop_and_nothing_else(handlers, sig):
    stop = StopSignals()
    stop.install()
    signal.raise_signal(sig)
    assert stop.is_set() and stop.first == sig.name
    signal.raise_signal(sig)                    # a repeat is counted, the process goes on
    assert stop.received == [sig.name, sig.name]


def test_sigint_ignored_by_the_shell_is_handled_again(handlers):
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # what `cmd &` in a script does
    stop = StopSignals()
    stop.install()
    signal.raise_signal(signal.SIGINT)
    assert stop.first == "SIGINT"


def test_reap_sessions_ends_a_session_and_what_it_forked():
    leader = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(session_members({leader.pid})) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(session_members({leader.pid})) == 3
        signalled = reap_sessions({leader.pid}, grace_s=0.1)
        assert leader.pid in signalled and len(signalled) == 3
        leader.wait(5)
        assert session_members({leader.pid}) == []
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()


def test_reap_sessions_leaves_other_processes_alone():
    other = subprocess.Popen(["sleep", "60"])           # in this process's session
    try:
        assert reap_sessions(set()) == []
        assert reap_sessions({999_999_999}, grace_s=0.1) == []
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def _session() -> subprocess.Popen:
    leader = subprocess.Popen(["sh", "-c", "sleep 60 & wait"], start_new_session=True)
    deadline = time.monotonic() + 5
    while len(session_members({leader.pid})) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return leader


def test_the_watchdog_ends_the_sessions_when_its_parent_goes_without_a_word():
    leader = _session()
    try:
        dog = SessionWatchdog({leader.pid})
        dog.proc.stdin.close()                    # what a SIGKILL of this process would do
        dog.proc.wait(10)
        leader.wait(5)
        assert session_members({leader.pid}) == []
    finally:
        if leader.poll() is None:
            leader.kill()
            leader.wait()


def test_the_watchdog_ends_sessions_added_later():
    leader, later = _session(), _session()
    try:
        dog = SessionWatchdog({leader.pid})
        dog.watch(later.pid)
        dog.proc.stdin.close()
        dog.proc.wait(10)
        leader.wait(5)
        later.wait(5)
        assert session_members({leader.pid, later.pid}) == []
    finally:
        for p in (leader, later):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_dismissed_watchdog_touches_nothing():
    leader = _session()
    try:
        dog = SessionWatchdog({leader.pid})
        proc = dog.proc
        dog.dismiss()
        assert proc.returncode == 0
        assert leader.poll() is None and len(session_members({leader.pid})) == 2
    finally:
        reap_sessions({leader.pid}, grace_s=0)
        leader.wait()


class FlakyBoard:
    """A board whose database goes away for `down` updates; stops the watch after `ups`."""

    def __init__(self, stop: threading.Event, down: int, ups: int):
        self.stop, self.down, self.ups = stop, down, ups
        self.conns: list = []
        self.printed: list[str] = []
        self.progress = self
        self.console = self

    def print(self, text, **_):
        self.printed.append(text)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def update(self, conn):
        self.conns.append(conn)
        if self.down:
            self.down -= 1
            raise psycopg.errors.AdminShutdown("terminating connection due to administrator command")
        self.ups -= 1
        if self.ups == 0:
            self.stop.set()


class FakeConn:
    closed = 0

    def close(self):
        FakeConn.closed += 1


def test_the_console_rides_out_a_database_restart():
    stop = threading.Event()
    board = FlakyBoard(stop, down=3, ups=2)
    opened = []

    def connect():
        if len(opened) == 1:                      # the server is still coming back
            opened.append(None)
            raise psycopg.OperationalError("connection refused")
        opened.append(FakeConn())
        return opened[-1]

    t0 = time.monotonic()
    watch(connect, interval=0.01, stop=stop, board=board, retry_s=(0.01, 0.02))
    assert time.monotonic() - t0 < 5
    assert len(opened) == 5                       # the first, a refused one, three more
    assert board.ups == 0                         # the board went on after the restart
    assert sum("database unavailable" in p for p in board.printed) == 1
    assert any("database back" in p for p in board.printed)


def test_the_drain_report_says_what_the_integration_tests_read():
    line = re.compile(r"drained (\d+) managers?: (\d+) attempts? left in flight, (\d+) managers? did not answer")
    assert line.search(_drain_report({"pom-manager-1-0": 0, "pom-manager-1-1": 0}, 1.2)).groups() == ("2", "0", "0")
    text = _drain_report({"pom-manager-1-0": 3, "pom-manager-1-1": -1}, 16.0)
    assert line.search(text).groups() == ("2", "3", "1") and "reconciled at the next start" in text


@pytest.fixture
def listening():
    """A loopback port something else already listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_pom_run_refuses_a_taken_gateway_address_before_starting_anything(monkeypatch, capsys, listening, pom_run):
    monkeypatch.delenv("POM_SMS_URL", raising=False)
    monkeypatch.setenv("POM_HTTP_PORT", str(listening))
    assert pom_run(["run"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"pom: the gateway's address 127.0.0.1:{listening} cannot be bound (Address already in use); "
        "set POM_HTTP_HOST / POM_HTTP_PORT")


def _gateway(port: int):
    async def app(scope, receive, send):
        pass

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off"))
    return server, threading.Thread(target=server.run, daemon=True)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")   # uvicorn's sys.exit
def test_a_gateway_whose_address_was_taken_meanwhile_ends_the_wait_for_it(listening):
    """The port was free when `pom run` checked it and taken by the time uvicorn bound it."""
    server, thread = _gateway(listening)
    thread.start()
    assert _serving(server, thread, threading.Event()) is False
    thread.join(5)
    assert not thread.is_alive()


def test_the_wait_for_the_gateway_ends_when_it_listens_or_on_a_stop(listening):
    assert _port_taken("127.0.0.1", listening) == "Address already in use"
    server, thread = _gateway(0)                        # uvicorn binds a free port itself
    thread.start()
    try:
        assert _serving(server, thread, threading.Event()) is True
        port = server.servers[0].sockets[0].getsockname()[1]
        assert _port_taken("127.0.0.1", port) == "Address already in use"
    finally:
        server.should_exit = True
        thread.join(5)
    assert _port_taken("127.0.0.1", port) is None      # free again once it stopped
    starting, stopped = threading.Event(), threading.Event()
    stopped.set()
    thread = threading.Thread(target=starting.wait, daemon=True)     # alive, never listening
    thread.start()
    try:
        assert _serving(types.SimpleNamespace(started=False), thread, stopped) is False   # a stop came first
    finally:
        starting.set()

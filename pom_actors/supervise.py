"""Stopping a POM server cleanly, however it is asked to: the stop signals of `pom run`, and
the Ray processes it starts kept out of reach of a signal to its process group until it has
drained.

A terminal's Ctrl-C and hang-up, a script's `kill -- -PGID` and some supervisors signal a
whole process group at once. Ray starts its processes (GCS, raylet, agents, and through the
raylet the workers that run the actors) as children of the driver, in the driver's group: such
a signal would stop the actors while calls are in flight. `ray_started_here()` starts them
in sessions of their own instead (the embedded PostgreSQL does the same: store/database.py),
so only `pom run` gets the signal; it drains, then stops them itself, and `reap_sessions()`
ends whatever of those sessions is still running afterwards.

Ray itself is imported only inside `ray_started_here()`: the rest is usable (and
unit-tested) without it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP all ask for the same thing: a drain, then a stop.

    `install()` sets the handler for each of them explicitly — SIGINT too, which a
    non-interactive shell ignores in the jobs it starts in the background (Python then keeps
    it ignored) — and must be called again after anything that installs its own (`ray.init`
    sets a SIGTERM handler that exits at once, and Ray's core worker a fatal-signal handler).
    The handler only records the signal and sets `event`; the main loop does the stopping, so
    a signal during start-up or during the drain never interrupts either half-way. Repeated
    signals are counted and otherwise change nothing.

    SIGHUP usually means the terminal is gone: writes to it would fail (EIO) and end the stop
    half-way, so standard output and error that are a terminal are pointed at /dev/null first.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: list[str] = []

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)

    @property
    def first(self) -> str | None:
        return self.received[0] if self.received else None

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.event.wait(timeout)

    def _handle(self, signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if signum == signal.SIGHUP:
            _leave_terminal()
        self.event.set()


def _leave_terminal() -> None:
    """Point fds 1 and 2 at /dev/null if they are a terminal (that has hung up, or will). A
    terminal that has hung up no longer answers `isatty`; any character device other than
    /dev/null is taken for one."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        devnull = os.fstat(null).st_rdev
        for fd in (1, 2):
            try:
                st = os.fstat(fd)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev != devnull:
                    os.dup2(null, fd)
            except OSError:
                pass
    finally:
        os.close(null)


@contextlib.contextmanager
def ray_started_here() -> Iterator[None]:
    """Around `ray.init`. Inside:

    * the processes Ray starts from this process (a local instance: GCS, raylet, agents) each
      get a session of their own (setsid), so a signal to this process's group does not reach
      them; the workers the raylet forks stay in the raylet's session. Their fate-sharing is
      kept: Ray still gives them SIGKILL as parent-death signal, so a SIGKILL of this process
      still takes them down;
    * this process keeps its own handlers of SIGINT, SIGTERM and SIGHUP: `ray.init` would set
      one for SIGTERM that exits at once, and the core worker it connects installs a
      fatal-signal handler that prints `*** SIGTERM received ***` and dies; both are undone
      on the way out.
    """
    if sys.platform == "win32":
        yield
        return
    from ray._private import services, utils

    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    popen, set_sigterm_handler = services.ConsolePopen, utils.set_sigterm_handler

    class OwnSession(popen):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            kwargs["start_new_session"] = True
            super().__init__(*args, **kwargs)

    services.ConsolePopen = OwnSession
    utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        services.ConsolePopen, utils.set_sigterm_handler = popen, set_sigterm_handler
        if threading.current_thread() is threading.main_thread():
            for sig, handler in saved.items():
                if handler is not None:         # None: set from C, not by Python; leave it
                    signal.signal(sig, handler)


def session_members(sessions: Iterable[int]) -> list[int]:
    """Pids of the live processes (zombies aside) in these sessions, this process excluded."""
    import psutil

    wanted, me, out = set(sessions), os.getpid(), []
    if not wanted:
        return out
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if os.getsid(proc.pid) in wanted and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc.pid)
        except (OSError, psutil.Error):            # gone meanwhile
            pass
    return out


def reap_sessions(sessions: Iterable[int], grace_s: float = 5.0) -> list[int]:
    """End what is left of these sessions: give the processes `grace_s` to go by themselves
    (Ray's agents and workers notice their raylet's end), then SIGTERM, then SIGKILL. Returns
    the pids that had to be signalled."""
    sessions = set(sessions)
    deadline = time.monotonic() + grace_s
    while (left := session_members(sessions)) and time.monotonic() < deadline:
        time.sleep(0.1)
    signalled = list(left)
    for sig, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while (left := session_members(sessions)) and time.monotonic() < deadline:
            time.sleep(0.1)
    if left:
        log.warning("processes still running after SIGKILL: %s", left)
    return signalled



# The watchdog reads lines on stdin: "+SID" adds a session to end, "done" (a clean stop) ends
# the watchdog, end of file (its parent died without a word: SIGKILL) makes it end the
# sessions, those named by its arguments and those added.
_WATCHDOG = """
import os, signal, sys, time
sessions = {int(a) for a in sys.argv[1:]}
for line in sys.stdin:
    line = line.strip()
    if line == "done":
        sys.exit(0)
    if line.startswith("+") and line[1:].isdigit():
        sessions.add(int(line[1:]))
def members():
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getsid(int(name)) in sessions:
                    with open("/proc/" + name + "/stat") as f:
                        if f.read().rpartition(")")[2].split()[0] != "Z":
                            out.append(int(name))
            except OSError:
                pass
    return out
for sig, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
    for pid in members():
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + wait_s
    while members() and time.monotonic() < deadline:
        time.sleep(0.1)
"""


class SessionWatchdog:
    """A small process, in a session of its own, that ends `sessions` if this process dies
    without dismissing it — a SIGKILL, which nothing in this process can catch. Ray gives its
    GCS and raylet SIGKILL as parent-death signal, but not what the raylet forked: its agents
    would linger a minute or more, trying to report the raylet's death to a GCS that is gone."""

    def __init__(self, sessions: Iterable[int] = ()):
        self.proc: subprocess.Popen | None = None
        sessions = sorted(set(sessions))
        if os.path.isdir("/proc"):
            self.proc = subprocess.Popen([sys.executable, "-I", "-c", _WATCHDOG, *map(str, sessions)],
                                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)

    def watch(self, session: int) -> None:
        """Also end this session (a process started with `start_new_session=True`: its pid)
        if this process is killed."""
        if self.proc is not None:
            try:
                self.proc.stdin.write(f"+{int(session)}\n".encode())
                self.proc.stdin.flush()
            except OSError:
                pass

    def dismiss(self) -> None:
        """After a clean stop: the watchdog ends without touching anything."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.stdin.write(b"done\n")
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

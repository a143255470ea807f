"""Clean stops and crashes of the single server: `pom run` as a real process, stopped the
ways a terminal, a script and systemd do, killed, and with its embedded PostgreSQL killed
mid-job.

Each case starts `pom run` on a fresh data directory (a copy of one initialised and migrated
once for the module) with the demo: 300 contacts on a scaled clock from a Wednesday
afternoon, so calls are in flight at once. It waits for the gateway and for dialling, then
stops it and checks:

* it exits 0 within a bound, having drained: its drain line says every manager answered and
  no attempt was left in flight, and the database agrees (no work item left `in_flight`);
* nothing it started is left: not the embedded PostgreSQL (the postmaster named by
  `postmaster.pid`, every process whose command line names the data directory), not a Ray
  process (every descendant of `pom run` recorded while it ran).

SIGTERM to the process alone, SIGINT to one started with SIGINT ignored (a script's `pom run
&`), SIGTERM to its whole process group (what a terminal or a supervisor does; systemd's
default signals the whole control group, see docs/operations.md), and the SIGHUP the kernel
sends when its terminal is closed. Then: its database killed mid-job (restarted, the job
completes, every attempt settled, the console still there); and SIGKILL (nothing left, the
next run resumes).

The processes recorded are killed by pid at the end of each test whatever happened, so a
failure here does not leave servers behind on the machine. One `pom run` at a time: about
11 s to dialling and 4 s to stop each here; the file takes about 2 minutes.
"""
from __future__ import annotations

import fcntl
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from .ports import free_port
from .processes import Recorded

pytestmark = pytest.mark.timeout(240)

POM = str(Path(sys.executable).with_name("pom"))
CLOCK_START = "2026-11-25T15:00:00+00:00"      # a Wednesday: most demo time zones are in their window
START_S = 120        # to a running job with attempts (Ray alone takes ~7 s here)
STOP_S = 45          # the drain waits up to 15 s for managers and 10 s more for the director
DRAIN = re.compile(r"drained (\d+) managers?: (\d+) attempts? left in flight, (\d+) managers? did not answer")


def _ignore_sigint() -> None:
    """What a non-interactive shell does to a job it starts in the background (`cmd &`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _controlling_tty() -> None:
    """In the child: its terminal (stdin) becomes the controlling terminal of its new session."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A pseudo-terminal whose output is copied to a file until it is closed (`hang_up`),
    which makes the kernel send SIGHUP to the session it controls, as closing a terminal
    window does."""

    def __init__(self, out):
        self.master, self.slave = os.openpty()
        self.out = out
        self.open = True
        self.reader = threading.Thread(target=self._copy, daemon=True)

    def started(self) -> None:
        os.close(self.slave)                       # the child has its own copy
        self.reader.start()

    def _copy(self) -> None:
        while self.open:
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    return
                if not data:
                    return
                self.out.write(data.decode(errors="replace"))
                self.out.flush()

    def hang_up(self) -> None:
        self.open = False
        self.reader.join()
        os.close(self.master)


class PomRun:
    """One `pom run` process in a session of its own (its pid is its process group's id)."""

    def __init__(self, data_dir: Path, *, scale: float = 300, ignore_sigint: bool = False,
                 terminal: bool = False):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out_path = data_dir.parent / f"pom-run-{self.port}.out"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POM_", "RAY_ADDRESS"))}
        env.update(POM_DATA_DIR=str(data_dir), POM_HTTP_PORT=str(self.port), POM_DEMO="1",
                   POM_DEMO_CONTACTS="300", POM_CLOCK_SCALE=str(scale), POM_CLOCK_START=CLOCK_START,
                   POM_LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
        self.out = open(self.out_path, "w")
        self.terminal: Terminal | None = Terminal(self.out) if terminal else None
        io = dict(stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT)
        if self.terminal:
            io = dict(stdin=self.terminal.slave, stdout=self.terminal.slave, stderr=self.terminal.slave)
        self.proc = subprocess.Popen([POM, "run"], env=env, cwd=data_dir.parent, start_new_session=True,
                                     preexec_fn=_controlling_tty if terminal else
                                     _ignore_sigint if ignore_sigint else None, **io)
        if self.terminal:
            self.terminal.started()
        self.recorded = Recorded()                # what it started

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def job(self, job_id: int = 1) -> dict | None:
        try:
            token = (self.data_dir / "admin-token").read_text().strip()   # pom run's first start wrote it
            r = httpx.get(f"{self.url}/api/v1/jobs/{job_id}", timeout=5,
                          headers={"Authorization": f"Bearer {token}"})
        except OSError:
            return None
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def wait_dialling(self, timeout: float = START_S) -> dict:
        """Until the demo job runs and has attempts out or done; records what was started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"pom run exited {self.proc.returncode}:\n{self.output()[-3000:]}"
            job = self.job()
            if job and job["state"] == "running" and sum(job["attempts_by_code"].values()) > 0:
                self.record()
                return job
            time.sleep(0.5)
        raise AssertionError(f"no running job after {timeout}s:\n{self.output()[-3000:]}")

    def postmaster(self) -> int | None:
        try:
            return int((self.data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def record(self) -> None:
        """Every process `pom run` started (its descendants, its PostgreSQL) as seen now."""
        procs = psutil.Process(self.proc.pid).children(recursive=True)
        if (pm := self.postmaster()) and psutil.pid_exists(pm):
            procs.append(psutil.Process(pm))
        self.recorded.add(procs + _naming(self.data_dir))

    def alive(self) -> list[str]:
        return self.recorded.alive()

    def stop_by(self, sig: int | None, *, group: bool = False) -> float:
        """Send `sig` (to the process, or to its whole process group; None: close its terminal)
        and wait for the exit; returns the seconds it took."""
        self.record()
        t0 = time.monotonic()
        if sig is None:
            self.terminal.hang_up()
        else:
            (os.killpg if group else os.kill)(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"pom run still running {STOP_S}s after {sig and signal.Signals(sig).name}:\n"
                                 f"{self.output()[-3000:]}") from None
        return time.monotonic() - t0

    def left_behind(self, grace: float = 5.0) -> list[str]:
        return self.recorded.left_behind(grace)

    def cleanup(self) -> None:
        """Kill by pid whatever of this run is still there (only after a failure)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.terminal and self.terminal.open:
            self.terminal.hang_up()
        self.recorded.kill()
        self.out.close()


def _naming(data_dir: Path) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        if any(str(data_dir) in part for part in (p.info["cmdline"] or [])):
            out.append(p)
    return out


def _in_flight_items(data_dir: Path) -> dict[str, int]:
    """Work items of the demo job by state, read with the data directory's own server (started
    here after `pom run` is gone, stopped again)."""
    from pom_actors.store.database import EmbeddedPostgres, connect

    db = EmbeddedPostgres(data_dir, supervise=False)
    try:
        with connect(db.url) as conn:
            return dict(conn.execute("SELECT state, count(*) FROM work_items WHERE job_id = 1 GROUP BY 1"))
    finally:
        db.stop()


def _new_dir(prefix: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(root, 0o755)                       # the embedded server runs as its own user (as root)
    (root / "data").mkdir()
    os.chmod(root / "data", 0o755)
    return root / "data"


@pytest.fixture(scope="module")
def template():
    """A data directory with the schema in place (initdb and the migrations take seconds each:
    once for the module, each test starts from a copy)."""
    from pom_actors.store.database import EmbeddedPostgres, migrate

    data = _new_dir("pom-signals-template-")
    db = EmbeddedPostgres(data, supervise=False)
    try:
        migrate(db.url)
    finally:
        db.stop()
    yield data
    shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture
def data_dir(template):
    data = _new_dir("pom-signals-")
    # cp -a keeps the owner (as root, the server's own user) and the modes PostgreSQL checks
    subprocess.run(["cp", "-a", str(template / "pgdata"), str(data / "pgdata")], check=True)
    yield data
    shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture
def runs(data_dir):
    started: list[PomRun] = []

    def start(**kw) -> PomRun:
        run = PomRun(data_dir, **kw)
        started.append(run)
        return run

    yield start
    for run in started:
        run.cleanup()


def _assert_drained(run: PomRun) -> None:
    m = DRAIN.search(run.output())
    assert m, f"no drain line:\n{run.output()[-3000:]}"
    managers, left, silent = map(int, m.groups())
    assert managers >= 1 and left == 0 and silent == 0, m.group(0)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT-in-background", "SIGTERM-to-group",
                                 "SIGHUP-terminal-closed"])
def test_a_signal_drains_and_stops_everything_it_started(runs, data_dir, how):
    """SIGTERM to the process (kill); SIGINT to a process started with SIGINT ignored (a
    script's `pom run &`); SIGTERM to its whole process group (as a supervisor or a terminal
    signals it); SIGHUP from the kernel when its terminal is closed."""
    terminal = how.endswith("terminal-closed")
    sig = None if terminal else {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}[how.split("-")[0]]
    run = runs(ignore_sigint=how == "SIGINT-in-background", terminal=terminal)
    t0 = time.monotonic()
    run.wait_dialling()
    up = time.monotonic() - t0
    assert run.alive(), "nothing recorded"
    took = run.stop_by(sig, group=how.endswith("group"))
    print(f"{how}: dialling {up:.1f}s after the start; exit {run.proc.returncode} {took:.1f}s after the signal")
    assert run.proc.returncode == 0, run.output()[-3000:]
    assert run.left_behind() == []
    if not terminal:                            # after a hang-up its drain line went nowhere
        _assert_drained(run)
    items = _in_flight_items(data_dir)
    assert items.get("in_flight", 0) == 0, items
    assert sum(items.values()) == 300


def test_a_killed_database_is_restarted_and_the_job_completes(runs, data_dir):
    run = runs(scale=10000)
    run.wait_dialling()
    first = run.postmaster()
    os.kill(first, signal.SIGKILL)
    t0 = time.monotonic()
    while (pm := run.postmaster()) in (None, first) or not psutil.pid_exists(pm):
        assert run.proc.poll() is None, f"pom run ended with its database:\n{run.output()[-3000:]}"
        assert time.monotonic() - t0 < 30, "PostgreSQL not restarted within 30 s"
        time.sleep(0.2)
    print(f"database back after {time.monotonic() - t0:.1f}s")
    run.record()
    deadline = time.monotonic() + 120
    while (job := run.job()) is None or job["state"] != "completed":
        assert run.proc.poll() is None, f"pom run ended:\n{run.output()[-3000:]}"
        assert time.monotonic() < deadline, f"job not completed: {job}"
        time.sleep(0.5)
    assert "in_flight" not in job["attempts_by_code"], job["attempts_by_code"]
    items = job["work_items"]
    assert sum(items.values()) == 300 and items.get("done", 0) + items.get("scheduled", 0) == 300, items
    deadline = time.monotonic() + 5                 # the console refreshes every second
    while "job 1 (demo-reminders) completed" not in run.output():   # it rode the restart out
        assert time.monotonic() < deadline, run.output()[-3000:]
        time.sleep(0.2)
    run.stop_by(signal.SIGTERM)
    assert run.proc.returncode == 0, run.output()[-3000:]
    assert run.left_behind() == []


def test_after_sigkill_nothing_is_left_and_the_next_run_resumes(runs, data_dir):
    """No drain is possible, but what `pom run` started goes with it: PostgreSQL by its
    parent-death signal, Ray's GCS and raylet by theirs, the rest of Ray's sessions (and the
    Kafka broker) by the watchdog. The next run on the data directory resumes the job."""
    run = runs()
    run.wait_dialling()
    run.stop_by(signal.SIGKILL)
    t0 = time.monotonic()
    assert run.left_behind(grace=15) == []
    print(f"SIGKILL: nothing left {time.monotonic() - t0:.1f}s after the exit")
    again = runs()
    job = again.wait_dialling()
    assert job["id"] == 1                          # the same job, resumed
    again.stop_by(signal.SIGTERM)
    assert again.proc.returncode == 0, again.output()[-3000:]
    assert again.left_behind() == []

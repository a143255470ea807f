"""What the benchmarks that need PostgreSQL but no Ray share: a scratch database, and a writer
that measures how long its writes wait while the benchmarked work runs."""
from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from pom_actors.store.database import EmbeddedPostgres, connect, migrate


@contextmanager
def embedded_database(prefix: str) -> Iterator[str]:
    """An embedded PostgreSQL in a new temporary directory, migrated to head: its URL; stopped
    at the end."""
    pg = EmbeddedPostgres(tempfile.mkdtemp(prefix=prefix))
    try:
        migrate(pg.url)
        yield pg.url
    finally:
        pg.stop()


@contextmanager
def timed_writer(url: str, write: Callable[[psycopg.Connection, int], bool | None],
                 pause_s: float = 0.01) -> Iterator[list[float]]:
    """While the block runs, a thread calls `write(conn, n)` (n: the calls timed before it) on
    its own autocommit connection every `pause_s`, until it returns False; yields the list of
    each call's milliseconds, filled as they come."""
    stop, times = threading.Event(), []

    def run() -> None:
        with connect(url, autocommit=True) as conn:
            while not stop.is_set():
                t = time.perf_counter()
                if write(conn, len(times)) is False:
                    return
                times.append((time.perf_counter() - t) * 1000)
                time.sleep(pause_s)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield times
    finally:
        stop.set()
        thread.join(10)

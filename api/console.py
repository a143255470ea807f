"""The terminal of `pom run`: a live progress bar per job and, when a job ends, its summary of
attempts by completion code. It only reads the database."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pom_actors.core.lifecycle import TERMINAL, JobState
from pom_actors.core.reports import occupancy
from pom_actors.store import jobs as jobstore
from pom_actors.store import reports

console = Console()
EVER = (datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(9999, 1, 1, tzinfo=timezone.utc))


def summary(conn, job: dict) -> Table:
    codes = jobstore.attempt_codes(conn, job["id"])
    table = Table(title=f"job {job['id']} ({job['campaign']}) {job['state']}: {job['reason'] or ''}")
    table.add_column("completion code")
    table.add_column("attempts", justify="right")
    for code, n in codes.items():
        table.add_row(code, str(n))
    table.add_row("[b]total[/b]", f"[b]{sum(codes.values())}[/b]")
    for name, value in agent_figures(conn, job["id"]).items():
        table.add_row(name, "—" if value is None else f"{value:.1%}")
    return table


def agent_figures(conn, job_id: int) -> dict[str, float | None]:
    """An agent-based job's occupancy (its agents' time on call and in wrap-up until their
    disposition, over their logged-in time, from agent_events) and abandon rate (abandoned over live answers, from the ledger); nothing for
    a job no agent worked."""
    worked = occupancy(reports.job_agent_time(conn, job_id))
    if worked is None:
        return {}
    whole = [r for r in reports.abandons(conn, EVER[0], EVER[1], job_id=job_id) if r["at"] is None]
    return {"occupancy": worked, "abandon rate": whole[0]["rate"] if whole else None}


class JobBoard:
    """Progress bars of the jobs in the database, refreshed by `update()`."""

    def __init__(self):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console)
        self.tasks: dict[int, int] = {}
        self.ended: set[int] = set()

    def __enter__(self) -> "JobBoard":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, conn) -> None:
        rows = jobstore.jobs(conn)
        counts = jobstore.state_counts(conn, [r["id"] for r in rows])
        for job in rows:
            c = counts[job["id"]]
            total, done = sum(c.values()), c.get("done", 0)
            detail = " ".join(f"{s}={c.get(s, 0)}" for s in ("ready", "in_flight", "scheduled")) + \
                f" [{job['state']}]"
            if job["id"] not in self.tasks:
                if JobState(job["state"]) in TERMINAL:
                    self.ended.add(job["id"])        # ended before this run: no bar, no summary
                    continue
                self.tasks[job["id"]] = self.progress.add_task(
                    f"job {job['id']} {job['campaign']}", total=total, detail=detail)
            self.progress.update(self.tasks[job["id"]], completed=done, total=total, detail=detail)
            if JobState(job["state"]) in TERMINAL and job["id"] not in self.ended:
                self.ended.add(job["id"])
                self.progress.console.print(summary(conn, job))


def watch(connect: Callable[[], Any], stop_after: float | None = None, interval: float = 1.0,
          stop: threading.Event | None = None, board: JobBoard | None = None,
          retry_s: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0)) -> None:
    """Show the board until `stop` is set (or `stop_after` seconds). `connect()` opens the
    database connection; when the database goes away (a restart, a lost connection) the
    board keeps its bars, says so once, and reconnects with growing pauses (`retry_s`, the
    last one repeating) until it answers again."""
    stop = stop or threading.Event()
    start = time.monotonic()
    conn, failures = None, 0
    with board or JobBoard() as board:
        while stop_after is None or time.monotonic() - start < stop_after:
            try:
                if conn is None:
                    conn = connect()
                board.update(conn)
                if failures:
                    board.progress.console.print(f"database back after {failures} "
                                                 f"attempt{'s' if failures > 1 else ''} to reconnect")
                failures = 0
                pause = interval
            except psycopg.OperationalError as exc:
                if failures == 0:
                    board.progress.console.print(f"[yellow]database unavailable ({_first_line(exc)}); "
                                                 "reconnecting…[/yellow]")
                _close(conn)
                conn = None
                pause = retry_s[min(failures, len(retry_s) - 1)]
                failures += 1
            if stop.wait(pause):
                break
    _close(conn)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _close(conn) -> None:
    if conn is not None:
        try:
            conn.close()
        except Exception:
            pass

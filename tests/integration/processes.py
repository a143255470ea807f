"""What a test started as real processes, recorded so that only those are ever checked or killed.

A process is known by its pid and its start time (a pid can be reused by the time it is
looked at again). Shared by the tests that run `pom run` and `ray start` as processes of
their own (test_signals.py, test_cluster_launch.py).
"""
from __future__ import annotations

import time
from collections.abc import Iterable

import psutil


class Recorded:
    def __init__(self) -> None:
        self.seen: dict[int, float] = {}          # pid -> create_time

    def add(self, procs: Iterable[psutil.Process]) -> None:
        for p in procs:
            try:
                self.seen.setdefault(p.pid, p.create_time())
            except psutil.NoSuchProcess:
                pass

    def add_tree(self, pid: int) -> None:
        """`pid` and every process below it, as they are now."""
        try:
            root = psutil.Process(pid)
            self.add([root, *root.children(recursive=True)])
        except psutil.NoSuchProcess:
            pass

    def alive(self) -> list[str]:
        """What of the recorded processes still runs (same pid and start time)."""
        out = []
        for pid, created in self.seen.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(f"{pid} {' '.join(p.cmdline())[:120]}")
            except psutil.NoSuchProcess:
                pass
        return out

    def left_behind(self, grace: float = 5.0) -> list[str]:
        """What still runs once `grace` seconds have passed (or nothing, sooner)."""
        deadline = time.monotonic() + grace
        while (left := self.alive()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left

    def kill(self) -> None:
        """SIGKILL to every recorded process still running (after a failure)."""
        for pid, created in self.seen.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == created:
                    p.kill()
            except psutil.NoSuchProcess:
                pass

"""Outbound ports in use: each notification job's grant turned into caps for its managers.

The license allocation (`licenses.py`) grants each notification job a number of outbound
(voice) ports. A job runs on several Campaign Managers, and ports are held by calls: a lowered
grant cannot end the calls already up, and the ports a job gives back must not be dialled by
another job before they are free. So the Agent Manager hands each manager a **cap** on its
calls in flight, asked for every `PORTS_REFRESH_S` with what the manager holds (`Report`:
calls in flight, the cap it holds, whether it wants more), and keeps what it handed out.

A manager's *committed* ports are the most it may have up before its next ask:
`max(in flight, the cap it holds, the cap last handed to it)`. A cap is then at most

* the job's grant minus what the job's other managers committed, and
* the pool minus what every other manager of every notification job committed,

so the managers' calls never add up beyond a job's grant nor beyond the pool — also while a
job whose grant was lowered still finishes calls above it: the ports it frees go to the job
that gained them as they free. Within those bounds each manager targets its **fair share**:
the grant split evenly by manager index, the remainder's extra units rotating among the
managers every `ROTATE_S` (a share of 0 — fewer ports than managers — never starves a
manager's shards for good). A manager that wants no more (paused, or its last claim found
fewer contacts than it asked for: it wants again, to look, every `PORTS_PROBE_S`) is held to
its calls in flight, and what it leaves of its share goes evenly to the managers that want
more (a manager not heard of yet is taken to want its share).

After a (re)start the Agent Manager does not know what the managers hold: for `settle_s`
no cap exceeds the manager's calls in flight (every manager reports within it).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PORTS_REFRESH_S = 1.0     # real seconds between two asks of a notification job's manager
PORTS_RETRY_S = 0.1       # ... after an ask with no answer (the job not told yet at its start)
PORTS_PROBE_S = 5.0       # real seconds a manager whose contacts ran out waits to look again
ROTATE_S = 10.0           # real seconds a remainder unit of a grant stays with one manager
SETTLE_S = 2 * PORTS_REFRESH_S


@dataclass(frozen=True, slots=True)
class Report:
    """What one manager told at its last ask, and the cap it was handed then."""

    in_use: int                     # its calls in flight
    held: int | None                # the cap it held when asking (None: unlimited)
    wanting: bool                   # its last decision was cut by its cap, with contacts due
    handed: int | None = None       # the cap handed to it in answer

    @property
    def committed(self) -> int:
        return max(self.in_use, self.held or 0, self.handed or 0)


def fair_share(grant: int, index: int, managers: int, turn: int = 0) -> int:
    """Manager `index`'s even share of `grant` among `managers`; the `grant % managers`
    extra units go to the managers `turn`, `turn + 1`, ... (mod `managers`). The shares sum
    to `grant`."""
    base, extra = divmod(grant, managers)
    return base + (1 if (index - turn) % managers < extra else 0)


class PortShares:
    """The reports of every notification job's managers and the caps handed to them."""

    def __init__(self, started: float, settle_s: float = SETTLE_S):
        self.settle_until = started + settle_s
        self.reports: dict[int, dict[int, Report]] = {}    # job -> manager index -> report

    def keep(self, jobs: Iterable[int]) -> None:
        """Forget the managers of jobs no longer running."""
        running = set(jobs)
        for job_id in [j for j in self.reports if j not in running]:
            del self.reports[job_id]

    def in_use(self) -> int:
        """Calls in flight of every notification job, as its managers last reported."""
        return sum(r.in_use for job in self.reports.values() for r in job.values())

    def cap(self, job_id: int, index: int, managers: int, grant: int | None, pool: int | None,
            report: Report, now: float) -> int | None:
        """Manager `index`'s cap on its calls in flight (None: unlimited), given the job's
        `grant` and the `pool`'s size; remembered with its report. `now`: real seconds
        (monotonic)."""
        if not 0 <= index < managers:
            raise ValueError(f"manager index {index} is not one of {managers}")
        job = self.reports.setdefault(job_id, {})
        for i in [i for i in job if i >= managers]:
            del job[i]
        others = {i: r for i, r in job.items() if i != index}
        if grant is None:
            job[index] = Report(report.in_use, report.held, report.wanting, None)
            return None
        turn = int(now // ROTATE_S) % managers
        fair = {i: fair_share(grant, i, managers, turn) for i in range(managers)}
        if report.wanting:      # what managers wanting no more leave, shared by those that want
            idle = [i for i, r in others.items() if not r.wanting]
            spare = sum(max(0, fair[i] - others[i].committed) for i in idle)
            target = fair[index] + spare // (managers - len(idle))
        else:
            target = min(fair[index], report.in_use)
        cap = min(target, grant - sum(r.committed for r in others.values()))
        if pool is not None:
            elsewhere = sum(r.committed for j, reports in self.reports.items() if j != job_id
                            for r in reports.values())
            cap = min(cap, pool - elsewhere - sum(r.committed for r in others.values()))
        if now < self.settle_until:
            cap = min(cap, report.in_use)
        cap = max(0, cap)
        job[index] = Report(report.in_use, report.held, report.wanting, cap)
        return cap

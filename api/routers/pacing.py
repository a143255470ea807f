"""`GET /jobs/{id}/pacing`: what the pacers of a job's managers are doing (docs/pacing.md,
"In the live system"): per handler the applied mode, the dial level (dials of the last
decision), lines and lines per agent, the rule window's counts and abandon rate, the reason
of each manager's last decision and the AMD alarm; and each manager's own figures.

The job is read from PostgreSQL (404 if there is none); its managers are asked their
`status()` at once, within `deps.COMPONENT_TIMEOUT_S`, as /metrics does. A manager that does
not answer is listed as down; a job without managers (queued, ended) has no handler figures.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
from fastapi import APIRouter, Depends

from pom_actors import names
from pom_actors.core.pacing.live import job_figures
from pom_actors.store import jobs as jobstore

from .. import deps
from ..metrics import MANAGED
from ..validation import Id
from .metrics import manager_probe

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}/pacing")
def job_pacing(job_id: Id, conn: psycopg.Connection = Depends(deps.db),
               probe: Callable = Depends(manager_probe)) -> dict:
    job = jobstore.job(conn, job_id)
    expected = [names.manager_name(job_id, i) for i in range(job["managers"])] if job["state"] in MANAGED else []
    answers = probe(expected, time.monotonic() + deps.COMPONENT_TIMEOUT_S)() if expected else {}
    up = {n: a for n, a in answers.items() if "holder" in a}
    return {"job_id": job_id, "state": job["state"],
            "handlers": job_figures({n: a.get("pacing") or {} for n, a in up.items()}),
            "managers": [{"name": n, "state": "up" if n in up else "down",
                          **({"handlers": up[n].get("pacing") or {}} if n in up else
                             {"error": answers.get(n, {}).get("error")})} for n in expected]}

"""What an agent's disposition does once its manager takes it: its code becomes the attempt's
completion code in the ledger, and its call-back time, if the job lives until then, is when the
contact is called again. Pure: the manager applies the result in one store call per cycle.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..lifecycle import JobState

ATTEMPT_ID = re.compile(r"^(\d{1,18})\.(\d{1,9})$")
# The job states in which a call-back can still be dialled by the job (its managers may resume).
ALIVE = frozenset({JobState.RUNNING, JobState.PAUSING, JobState.PAUSED, JobState.RESUMING})
DISPOSE_WAIT_S = 600.0    # business seconds a disposition waits for its attempt to settle


@dataclass(frozen=True, slots=True)
class Disposal:
    """One attempt's disposition as the ledger takes it. `callback_at` is set when the contact
    is to be called again then; `callback_refused` says why an asked call-back is not."""
    work_item_id: int
    attempt_no: int
    code: str
    at: datetime
    callback_at: datetime | None = None
    asked_callback_at: datetime | None = None
    callback_refused: str | None = None

    @property
    def attempt_id(self) -> str:
        return f"{self.work_item_id}.{self.attempt_no}"


def kept(dispositions: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The dispositions kept in PostgreSQL until a manager writes them (store.agents `write`,
    table agent_dispositions): those of a placed call (an attempt id) of a job, one per call
    (the later wins). The others set no code and are only told to the pacer."""
    latest: dict[str, Mapping[str, Any]] = {}
    for d in dispositions:
        call = d.get("call_id")
        if d.get("job_id") is not None and ATTEMPT_ID.match(str(call or "")):
            if call not in latest or d["at"] >= latest[call]["at"]:
                latest[call] = d
    return list(latest.values())


def disposals(dispositions: Iterable[Mapping[str, Any]], job_state: str | None,
              end_time: datetime | None) -> list[Disposal]:
    """The disposals of the dispositions taken, one per attempt: of two dispositions of the same
    call the later one wins (a retried take repeats the same one, which changes nothing). A
    disposition of no placed call (a preview card never dialled) has no attempt and is left out.
    A call-back is kept only while the job is alive and not past its finish end time."""
    latest: dict[tuple[int, int], Mapping[str, Any]] = {}
    for d in dispositions:
        m = ATTEMPT_ID.match(str(d.get("call_id") or ""))
        if m is None:
            continue
        key = (int(m[1]), int(m[2]))
        if key not in latest or d["at"] >= latest[key]["at"]:
            latest[key] = d
    out = []
    for (item, number), d in sorted(latest.items()):
        asked = d.get("callback_at")
        refused = None if asked is None else callback_refusal(asked, job_state, end_time)
        out.append(Disposal(item, number, d["code"], d["at"], asked if refused is None else None, asked, refused))
    return out


def callback_refusal(at: datetime, job_state: str | None, end_time: datetime | None) -> str | None:
    """Why a call-back at `at` cannot be dialled by the job (None: it can)."""
    if job_state not in ALIVE:
        return f"the job has ended (state {job_state})"
    if end_time is not None and at > end_time:
        return f"after the job's end time {end_time.isoformat()}"
    return None

"""The events of attempts, built in one place (the schema is docs/events.md).

A manager writes them to the outbox in the same fenced transaction as the ledger rows they
report: one for each attempt a rule restricted, one for each outcome settled.
"""
from __future__ import annotations

from typing import Any

from .nextstep import NextStep
from .work import AttemptRow

ATTEMPTS_TOPIC = "pom.attempts"


def job_key(job_id: int) -> str:
    """The outbox (and Kafka) key of a job's attempt events: ordered per job."""
    return f"job-{job_id}"


def _base(row: AttemptRow) -> dict[str, Any]:
    return {"attempt_id": f"{row.work_item_id}.{row.attempt_no}", "job_id": row.job_id,
            "contact_id": row.contact_id, "handler": row.handler, "address": row.address,
            "code": row.code, "at": row.completed_at.isoformat()}


def restricted_event(row: AttemptRow) -> dict[str, Any]:
    """A claimed attempt the rules restricted (its ledger row is complete)."""
    return {**_base(row), "rule": row.rule}


def settled_event(row: AttemptRow, step: NextStep) -> dict[str, Any]:
    """An allowed attempt's outcome (its completed ledger row) and the contact's next step."""
    return {**_base(row), "next": "done" if step.done else step.progress.handler,
            "next_at": None if step.done else step.at.isoformat()}

"""The events of attempts, built in one place (the schema is docs/events.md).

A manager writes them to the outbox in the same fenced transaction as the ledger rows they
report: one for each attempt a rule restricted, one for each outcome settled. The relay
publishes each event as one Kafka message (`messages`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .agents.state import Transition
from .nextstep import NextStep
from .work import AttemptRow

ATTEMPTS_TOPIC = "pom.attempts"
JOBS_TOPIC = "pom.jobs"
ALARMS_TOPIC = "pom.alarms"
AGENTS_TOPIC = "pom.agents"
SCHEMA_VERSION = 1          # every published event carries it as `schema` (docs/events.md)


def job_key(job_id: int) -> str:
    """The outbox (and Kafka) key of a job's attempt events: ordered per job."""
    return f"job-{job_id}"


def alarm_key(source: str) -> str:
    """The outbox (and Kafka) key of an alarm's events: raised and cleared stay in order."""
    return f"alarm-{source}"


def agent_key(agent_id: int) -> str:
    """The outbox (and Kafka) key of an agent's events: its changes stay in order."""
    return f"agent-{agent_id}"


def agent_event(t: Transition) -> dict[str, Any]:
    """One logged change of an agent's state (core.agents.state.Transition); a deferred
    command (logoff or not ready while busy) is a change to the same state, `deferred`."""
    return {"agent_id": t.agent_id, "at": t.at.isoformat(), "state": str(t.to_state),
            "previous": str(t.from_state), "event": t.event, "reason": t.reason, "job_id": t.job_id,
            "call_id": t.call_id, "deferred": t.deferred}


def alarm_event(source: str, raised: bool, severity: str, message: str, value: float | None,
                threshold: float | None) -> dict[str, Any]:
    """An alarm raised or cleared (core.load.Transition); the store adds `alarm_id` and `at`
    (the database's time) in the statement that raises or clears it."""
    metric, _, server = source.partition("@")
    return {"source": source, "metric": metric, "server": server or None,
            "state": "raised" if raised else "cleared", "severity": severity, "message": message,
            "value": value, "threshold": threshold}


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


@dataclass(frozen=True, slots=True)
class Message:
    """One event as the relay publishes it: one Kafka message per event (not per outbox row)."""
    topic: str
    key: str
    value: bytes
    event_id: str


def messages(row_id: int, topic: str, row_key: str, events: list[dict[str, Any]]) -> list[Message]:
    """The messages of one outbox row. An event about a contact is keyed by the contact (its
    events stay in order for a consumer), any other by the row's key (its job); the event id
    `<row id>.<index>` is the same however often the row is published, so a consumer that
    dedupes by it sees each event once."""
    out = []
    for index, event in enumerate(events):
        contact = event.get("contact_id") if isinstance(event, dict) else None
        key = f"contact-{contact}" if contact is not None else row_key
        out.append(Message(topic, key, orjson.dumps({"schema": SCHEMA_VERSION, **event}), f"{row_id}.{index}"))
    return out

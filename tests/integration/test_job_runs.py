"""A voice job of a few thousand contacts runs end to end through the actors and PostgreSQL.

No contact window here: business time runs 600x, so a session crosses several nights (the
window rule and waits are proven in tests/unit)."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

from .conftest import gateway_orders, phone_contacts

VOICE = {
    "name": "voice",
    "initial": "call",
    "handlers": {
        "call": {
            "type": "call", "addresses": ["phone1"], "message": "Hello {first_name}",
            "caller_id": "+12125550100", "ring_timeout": 20,
            "pacing": {"max_concurrent": 400, "attempts_per_second": 200},
            "results": {
                "answer_human": "done",
                "busy": {"action": "retry", "after": "30m", "max": 2},
                "no_answer": {"action": "retry", "after": "1h", "max": 1},
                "default": "done",
            },
        }
    },
}


def test_job_runs_to_completion_with_every_attempt_recorded(campaigns, conn):
    n = 3000
    job_id = campaigns.start(campaigns.make(VOICE, phone_contacts(n)))
    job = campaigns.wait(job_id, timeout=180)
    assert job["state"] == "completed", job
    items = campaigns.items(job_id)
    assert items == {"done": n}, items
    # every attempt has its verdict, rule and completion code
    rows = conn.execute("SELECT verdict, rule, code FROM attempts WHERE job_id = %s", (job_id,)).fetchall()
    assert rows and all(v in ("allowed", "restricted") and r and c for v, r, c in rows)
    codes = Counter(c for _, _, c in rows)
    assert codes["answer_human"] > n * 0.3
    # never twice: the gateways' record holds each attempt id once and matches the ledger
    items = _item_ids(conn, job_id)
    ours = [a for a in gateway_orders() if int(a.split(".")[0]) in items]
    assert len(ours) == len(set(ours))
    allowed = conn.execute("SELECT count(*) FROM attempts WHERE job_id = %s AND verdict = 'allowed'",
                           (job_id,)).fetchone()[0]
    assert len(ours) == allowed


def test_retries_happen_at_their_times(campaigns, conn):
    job_id = campaigns.start(campaigns.make(VOICE, phone_contacts(800)))
    campaigns.wait(job_id, timeout=180)
    pairs = conn.execute(
        "SELECT a.code, a.completed_at, b.created_at FROM attempts a JOIN attempts b "
        "ON b.work_item_id = a.work_item_id AND b.attempt_no = a.attempt_no + 1 "
        "WHERE a.job_id = %s AND a.code IN ('busy', 'no_answer')", (job_id,)).fetchall()
    assert pairs, "no retries happened"
    delay = {"busy": timedelta(minutes=30), "no_answer": timedelta(hours=1)}
    slack = timedelta(minutes=10)      # one busy second of real time at x600
    for code, completed, retried in pairs:
        assert delay[code] <= retried - completed <= delay[code] + slack, (code, retried - completed)
    retried_max = conn.execute(
        "SELECT max(attempt_no) FROM attempts WHERE job_id = %s", (job_id,)).fetchone()[0]
    assert retried_max <= 4            # first try + 2 busy retries + 1 no-answer retry


def _item_ids(conn, job_id: int) -> set[int]:
    return {r[0] for r in conn.execute("SELECT id FROM work_items WHERE job_id = %s", (job_id,))}

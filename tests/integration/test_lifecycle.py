"""Job control (pause, resume, stop) and every finish criterion, on the running system."""
from __future__ import annotations

import contextlib
import ipaddress
import time
from datetime import timedelta

import psutil
import pytest
import ray

from pom_actors.core.clock import clock_from_spec
from pom_actors.core.lifecycle import IllegalTransition

from .conftest import phone_contacts

SLOW = {  # at most 10 calls at once: a few thousand contacts take a while
    "name": "slow",
    "initial": "call",
    "handlers": {"call": {"type": "call", "addresses": ["phone1"], "message": "Hi {first_name}",
                          "pacing": {"max_concurrent": 10}, "results": {"default": "done"}}},
}


def _wait_for(predicate, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached")


def test_pause_resume_stop(campaigns, conn):
    job_id = campaigns.start(campaigns.make(SLOW, phone_contacts(3000)))
    _wait_for(lambda: campaigns.items(job_id).get("done", 0) > 50)
    assert campaigns.command(job_id, "pause") == "pausing"
    paused = campaigns.wait(job_id, states={"paused"}, timeout=60)
    assert paused["state"] == "paused"
    frozen = campaigns.items(job_id)
    assert frozen.get("in_flight", 0) == 0
    time.sleep(1.5)
    assert campaigns.items(job_id) == frozen, "a paused job kept dialling"
    with pytest.raises(ray.exceptions.RayTaskError) as err:
        campaigns.command(job_id, "pause")
    assert isinstance(err.value.cause, IllegalTransition)

    assert campaigns.command(job_id, "resume") == "resuming"
    campaigns.wait(job_id, states={"running"}, timeout=30)
    _wait_for(lambda: campaigns.items(job_id).get("done", 0) > frozen.get("done", 0) + 20)

    campaigns.command(job_id, "stop")
    job = campaigns.wait(job_id, timeout=60)
    assert job["state"] == "stopped"
    items = campaigns.items(job_id)
    assert set(items) == {"done"}, items        # nothing left in flight or ready
    cancelled = conn.execute("SELECT count(*) FROM work_items WHERE job_id = %s AND last_code = 'cancelled'",
                             (job_id,)).fetchone()[0]
    assert 0 < cancelled < 3000
    unattempted = conn.execute(
        "SELECT count(*) FROM work_items w WHERE job_id = %s AND last_code = 'cancelled' AND NOT EXISTS "
        "(SELECT 1 FROM attempts a WHERE a.work_item_id = w.id)", (job_id,)).fetchone()[0]
    assert unattempted == cancelled              # only never-attempted contacts were cancelled


@pytest.mark.parametrize("finish, reason", [
    ({"max_processed": 150}, "processed 150 contacts"),
    ({"goal_count": 40, "goal_codes": ["answer_human"]}, "goal"),
])
def test_finish_criteria_counts(campaigns, conn, finish, reason):
    job_id = campaigns.start(campaigns.make(SLOW, phone_contacts(2000), finish=finish))
    job = campaigns.wait(job_id, timeout=90)
    assert job["state"] == "completed" and reason in job["reason"], job
    items = campaigns.items(job_id)
    assert set(items) == {"done"}
    done = conn.execute("SELECT count(*) FROM work_items WHERE job_id = %s AND last_code <> 'cancelled'",
                        (job_id,)).fetchone()[0]
    if "max_processed" in finish:
        assert 150 <= done < 2000
    else:
        humans = conn.execute("SELECT count(*) FROM work_items WHERE job_id = %s AND last_code = 'answer_human'",
                              (job_id,)).fetchone()[0]
        assert 40 <= humans and done < 2000


def test_finish_at_end_time(campaigns, pom):
    # business time runs 600x: an end 20 business minutes away comes in about 2 s
    end = clock_from_spec(pom.settings.clock).now() + timedelta(minutes=20)
    job_id = campaigns.start(campaigns.make(SLOW, phone_contacts(3000), finish={"end_time": end.isoformat()}))
    job = campaigns.wait(job_id, timeout=60)
    assert job["state"] == "completed" and "end_time" in job["reason"], job
    assert set(campaigns.items(job_id)) == {"done"}


def test_a_local_ray_listens_on_loopback_only(pom):
    """A `pom run` of one server: no Ray port (control store, raylet, workers, agents, metrics)
    is reachable from another machine."""
    procs = [psutil.Process()]
    for pid in pom.ray_sessions:
        with contextlib.suppress(psutil.NoSuchProcess):
            p = psutil.Process(pid)
            procs += [p, *p.children(recursive=True)]
    listening = set()
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            listening |= {(p.name(), c.laddr.ip, c.laddr.port) for c in p.net_connections("inet")
                          if c.status == psutil.CONN_LISTEN}
    assert len({name for name, _, _ in listening}) >= 3      # gcs, raylet, workers at least
    assert {x for x in listening if not _loopback(x[1])} == set()


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback

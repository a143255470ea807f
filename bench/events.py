"""The event relay under load: bench/throughput.py's job (100,000 contacts on the instant voice
simulator, end to end through the actors) with the relay publishing the outbox to the broker
as the job runs. It measures the relay's sustained rate while the job runs and the outbox lag
when the job ends, and reads every event back from the broker to check none is missing.

    python bench/events.py [--contacts 100000]

The last line printed is one JSON object: events_per_s, lag_s, attempts_per_s, ...
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition  # noqa: E402

from pom_actors import names  # noqa: E402
from pom_actors.config import Settings  # noqa: E402
from pom_actors.core.events import ATTEMPTS_TOPIC  # noqa: E402
from pom_actors.runtime import Runtime  # noqa: E402
from pom_actors.store import jobs as jobstore  # noqa: E402
from pom_actors.store.outbox import OutboxStore  # noqa: E402
from throughput import bench_campaign  # noqa: E402


def relay_status() -> dict:
    return ray.get(names.actor(names.EVENT_RELAY).status.remote(), timeout=10)


def count_messages(bootstrap: str, topic: str, want: int, timeout: float = 120) -> int:
    """Distinct event ids in `topic`, read from the beginning until `want` or `timeout`."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                         "log_level": 3})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    ids: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(ids) < want and time.monotonic() < deadline:
        for m in consumer.consume(10_000, timeout=0.5):
            if not m.error():
                ids.add(dict(m.headers())["event-id"].decode())
    consumer.close()
    return len(ids)


def main() -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--contacts", type=int, default=100_000)
    args = ap.parse_args()
    settings = Settings.from_env().replace(data_dir=tempfile.mkdtemp(prefix="pom-bench-"), demo=False,
                                           voice_instant=True, managers_per_job=2, shards_per_job=8)
    rt = Runtime.start(settings)
    try:
        with rt.connect() as conn:
            campaign = bench_campaign(conn, args.contacts)
            outbox = OutboxStore(conn)
            while outbox.lag()[0]:                 # the jobs' own events of the setup
                time.sleep(0.1)
            published_before = relay_status()["published"]
            start = time.monotonic()
            job_id = ray.get(rt.director.create_job.remote(campaign))
            lags = []
            while jobstore.job(conn, job_id)["state"] not in ("completed", "stopped", "failed"):
                lags.append(outbox.lag()[1])
                time.sleep(0.5)
            job_s = time.monotonic() - start
            at_end = relay_status()
            lag_rows, lag_s = outbox.lag()
            while outbox.lag()[0]:
                time.sleep(0.05)
            drained_s = time.monotonic() - start - job_s
            attempts = conn.execute("SELECT count(*) FROM attempts WHERE job_id = %s", (job_id,)).fetchone()[0]
            received = count_messages(rt.settings.kafka_bootstrap, ATTEMPTS_TOPIC, attempts)
    finally:
        rt.stop(drain_s=1)
    during = at_end["published"] - published_before
    return {"contacts": args.contacts, "attempts": attempts, "job_s": round(job_s, 2),
            "attempts_per_s": round(attempts / job_s), "events_per_s": round(during / job_s),
            "lag_s": round(lag_s, 2), "lag_rows_at_end": lag_rows, "max_lag_s_during": round(max(lags or [0]), 2),
            "drained_after_s": round(drained_s, 2), "events_received": received,
            "events_missing": attempts - received}


if __name__ == "__main__":
    print(json.dumps(main()))

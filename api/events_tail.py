"""`pom events tail`: the event stream as JSON lines, as events arrive.

The broker is `POM_KAFKA_BOOTSTRAP` if set, else the one the gateway's `/health` names (its
event relay's). Each line is one event with its `topic`, `key` and `event_id` beside its
fields (docs/events.md); the consumer has a group of its own and commits nothing.
"""
from __future__ import annotations

import json
import os
import sys
import time
import uuid
from typing import TextIO

from pom_actors.core.events import AGENTS_TOPIC, ALARMS_TOPIC, ATTEMPTS_TOPIC, JOBS_TOPIC

from .client import PomClient, PomError

TOPICS = (ATTEMPTS_TOPIC, JOBS_TOPIC, ALARMS_TOPIC, AGENTS_TOPIC)
METADATA_S = 5.0            # how often topics that appear later (or grow partitions) are picked up


def broker(client: PomClient) -> str:
    """Where the events are: POM_KAFKA_BOOTSTRAP, or the running relay's broker."""
    if os.environ.get("POM_KAFKA_BOOTSTRAP"):
        return os.environ["POM_KAFKA_BOOTSTRAP"]
    relay = client.health().get("components", {}).get("event_relay")
    if not relay or not relay.get("broker"):
        raise PomError(503, {"error": "no_event_relay",
                             "message": "no event relay runs (POM_KAFKA=off?) and POM_KAFKA_BOOTSTRAP is unset"})
    return relay["broker"]


def tail(bootstrap: str, topics: list[str], *, from_beginning: bool = False, count: int | None = None,
         seconds: float | None = None, out: TextIO = sys.stdout) -> int:
    """Print events until Ctrl-C, or `count` events, or `seconds`; returns how many."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"pom-tail-{uuid.uuid4()}",
                         "enable.auto.commit": False, "log_level": 3})
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    assigned: set[tuple[str, int]] = set()
    printed, deadline, looked = 0, None if seconds is None else time.monotonic() + seconds, 0.0
    try:
        while (count is None or printed < count) and (deadline is None or time.monotonic() < deadline):
            if time.monotonic() - looked > METADATA_S:   # partitions assigned directly: no group to join
                looked = time.monotonic()
                new = _partitions(consumer, topics) - assigned
                if new:
                    consumer.incremental_assign([TopicPartition(t, p, start) for t, p in sorted(new)])
                    assigned |= new
                start = OFFSET_BEGINNING                   # whatever appears later is new
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            headers = dict(message.headers() or [])
            event = {"topic": message.topic(), "key": (message.key() or b"").decode(),
                     "event_id": headers.get("event-id", b"").decode(), **json.loads(message.value())}
            out.write(json.dumps(event) + "\n")
            out.flush()
            printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return printed


def _partitions(consumer, topics: list[str]) -> set[tuple[str, int]]:
    found = set()
    for topic in topics:
        meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is not None and meta.error is None:
            found |= {(topic, p) for p in meta.partitions}
    return found

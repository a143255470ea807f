"""Publishing to Kafka with confluent-kafka: an idempotent producer (no duplicates from its
own retries, order kept per partition, so per key) that creates the topics it needs."""
from __future__ import annotations

from collections.abc import Iterable

from .core.events import Message

PARTITIONS = 3
EVENT_ID_HEADER = "event-id"


class PublishError(RuntimeError):
    """Some messages of a batch were not acknowledged by the broker: publish it again."""


class KafkaPublisher:
    def __init__(self, bootstrap: str, *, timeout_s: float = 10.0):
        self.bootstrap, self.timeout_s = bootstrap, timeout_s
        self._topics: set[str] = set()
        self.producer = self._new_producer()

    def _new_producer(self):
        from confluent_kafka import Producer

        return Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5, "message.timeout.ms": int(self.timeout_s * 1000),
                         "log_level": 3})

    def publish(self, messages: list[Message]) -> None:
        """Send every message and wait for the broker to acknowledge all of them."""
        self._ensure_topics({m.topic for m in messages})
        failures: list[str] = []

        def delivered(err, _msg) -> None:
            if err is not None:
                failures.append(str(err))
        for m in messages:
            while True:
                try:
                    self.producer.produce(m.topic, key=m.key, value=m.value,
                                          headers={EVENT_ID_HEADER: m.event_id}, on_delivery=delivered)
                    break
                except BufferError:          # the local queue is full: let deliveries drain
                    self.producer.poll(0.1)
        left = self.producer.flush(self.timeout_s)
        if left or failures:
            self._reset()
            raise PublishError(f"{left} unsent, {len(failures)} failed: {failures[:1]}")

    def _reset(self) -> None:
        """After a failed batch: drop what this producer still holds (the whole batch goes
        again, in order, with the same event ids) and start a new one, whose idempotence
        state matches a broker that restarted; topics are checked again."""
        self.producer.purge()
        self.producer.flush(0)
        self.producer = self._new_producer()
        self._topics.clear()

    def _ensure_topics(self, topics: Iterable[str]) -> None:
        missing = set(topics) - self._topics
        if not missing:
            return
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(t, num_partitions=PARTITIONS, replication_factor=1)
                                       for t in sorted(missing)], request_timeout=self.timeout_s)
        for topic, future in futures.items():
            try:
                future.result(self.timeout_s)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise PublishError(f"topic {topic}: {exc}") from exc
            self._topics.add(topic)

    def close(self) -> None:
        self.producer.flush(self.timeout_s)

"""The relay without Ray, a database or a broker: fan-out, order, at-least-once with stable
event ids, and nothing marked published that the broker did not acknowledge."""
import asyncio

import orjson
import pytest

from pom_actors.core.events import SCHEMA_VERSION, messages
from pom_actors.services.event_relay import EventRelayService


class FakeOutbox:
    def __init__(self, rows):
        self.rows = {r[0]: {"row": r, "published": False} for r in rows}
        self.broken = False

    def unpublished(self, limit):
        return [r["row"] for _, r in sorted(self.rows.items()) if not r["published"]][:limit]

    def mark_published(self, ids):
        for i in ids:
            self.rows[i]["published"] = True

    def lag(self):
        return sum(not r["published"] for r in self.rows.values()), 0.0


class FakeBroker:
    bootstrap = "127.0.0.1:1"

    def __init__(self):
        self.log = []
        self.down = False
        self.fail_after = None        # acknowledge this many messages of the next batch, then fail

    def publish(self, batch):
        if self.down:
            raise RuntimeError("broker unreachable")
        if self.fail_after is not None:
            self.log.extend(batch[:self.fail_after])
            self.fail_after = None
            raise RuntimeError("connection lost mid-batch")
        self.log.extend(batch)


def rows(n_rows, per_row=3):
    return [(r, "pom.attempts", "job-1", [{"attempt_id": f"{r}.{i}", "contact_id": (r * per_row + i) % 4,
                                          "code": "busy"} for i in range(per_row)]) for r in range(1, n_rows + 1)]


def test_one_message_per_event_keyed_by_contact_else_by_the_rows_key_with_stable_ids():
    out = messages(7, "pom.jobs", "job-3", [{"job_id": 3, "state": "running"}, {"contact_id": 11}])
    assert [(m.topic, m.key, m.event_id) for m in out] == [("pom.jobs", "job-3", "7.0"),
                                                            ("pom.jobs", "contact-11", "7.1")]
    assert orjson.loads(out[0].value) == {"schema": SCHEMA_VERSION, "job_id": 3, "state": "running"}
    assert messages(7, "pom.jobs", "job-3", [{"job_id": 3}]) == messages(7, "pom.jobs", "job-3", [{"job_id": 3}])


def test_rows_are_published_in_order_and_marked_only_after_the_broker_acknowledged():
    store, broker = FakeOutbox(rows(5)), FakeBroker()
    relay = EventRelayService(open_store=lambda: store, publisher=broker, batch_rows=2)
    assert [relay.relay_once() for _ in range(4)] == [6, 6, 3, 0]
    assert [m.event_id for m in broker.log] == [f"{r}.{i}" for r in range(1, 6) for i in range(3)]
    assert relay.status()["outbox_lag_rows"] == 0 and relay.published == 15


def test_a_broker_that_is_down_loses_nothing():
    store, broker = FakeOutbox(rows(3)), FakeBroker()
    relay = EventRelayService(open_store=lambda: store, publisher=broker)
    broker.down = True
    with pytest.raises(RuntimeError):
        relay.relay_once()
    assert store.lag()[0] == 3 and broker.log == []
    broker.down = False
    relay.relay_once()
    assert len(broker.log) == 9 and store.lag()[0] == 0


def test_a_batch_cut_off_midway_goes_again_with_the_same_ids_so_a_deduping_consumer_sees_each_once():
    store, broker = FakeOutbox(rows(4)), FakeBroker()
    relay = EventRelayService(open_store=lambda: store, publisher=broker)
    broker.fail_after = 5
    with pytest.raises(RuntimeError):
        relay.relay_once()
    relay.relay_once()
    ids = [m.event_id for m in broker.log]
    assert len(ids) == 12 + 5                        # five went twice ...
    seen, deduped = set(), []
    for m in broker.log:                             # ... and a consumer deduping by id
        if m.event_id not in seen:
            seen.add(m.event_id)
            deduped.append(m)
    assert [m.event_id for m in deduped] == [f"{r}.{i}" for r in range(1, 5) for i in range(3)]
    by_key: dict[str, list[str]] = {}
    for m in deduped:                                # per key, in outbox order
        by_key.setdefault(m.key, []).append(m.event_id)
    assert all(v == sorted(v, key=lambda e: tuple(map(int, e.split(".")))) for v in by_key.values())


def test_the_loop_backs_off_on_failure_and_goes_on():
    store, broker = FakeOutbox(rows(2)), FakeBroker()
    relay = EventRelayService(open_store=lambda: store, publisher=broker)
    broker.down = True

    async def go():
        task = asyncio.create_task(relay.run())
        await asyncio.sleep(0.2)
        assert relay.status()["state"] == "failing" and relay.failures >= 1
        broker.down = False
        for _ in range(100):
            await asyncio.sleep(0.05)
            if store.lag()[0] == 0:
                break
        task.cancel()
    asyncio.run(go())
    assert store.lag()[0] == 0 and relay.status()["state"] == "up"


def test_published_events_match_the_shipped_json_schema():
    """docs/events.schema.json describes what the relay publishes: both attempt events as
    core.events builds them, and a job event as store.jobs.set_state writes it."""
    import json
    from datetime import datetime, timezone
    from pathlib import Path

    import jsonschema

    from pom_actors.core.events import restricted_event, settled_event
    from pom_actors.core.nextstep import NextStep, Progress
    from pom_actors.core.work import AttemptRow

    schema = json.loads((Path(__file__).parents[2] / "docs" / "events.schema.json").read_text())
    at = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)
    row = AttemptRow(7, 2, 1, 3, 40, 0, 1, "call", "call", "+12125550100", "allowed", "allowed", "allowed",
                     "gw", "busy", at, at)
    retry = NextStep(False, Progress("call", 0, {"call:busy": 1}, 2), at, "retry")
    done = NextStep(True, None, None, "done")
    restricted = AttemptRow(8, 1, 1, 3, 41, 0, 1, "call", "call", None, "restricted", "no_address",
                            "no address", None, "no_address", at, at)
    job = {"job_id": 1, "campaign_id": 3, "state": "completed", "previous": "stopping",
           "reason": "all contacts processed", "at": at.isoformat()}
    events = [settled_event(row, retry), settled_event(row, done), restricted_event(restricted), job]
    for message in [m for i, e in enumerate(events) for m in messages(i, "t", "job-1", [e])]:
        jsonschema.validate(orjson.loads(message.value), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema": 1, "job_id": 1}, schema)


def test_agent_events_match_the_shipped_json_schema_and_are_keyed_by_agent():
    """An agent's transitions as store.agents writes them to the outbox (core.events.agent_event,
    one row per agent keyed agent-<id>) fit docs/events.schema.json's `agent` kind only."""
    import json
    from datetime import datetime, timezone
    from pathlib import Path

    import jsonschema

    from pom_actors.core.agents.state import Agent, AgentEvent, apply
    from pom_actors.core.events import agent_event, agent_key

    schema = json.loads((Path(__file__).parents[2] / "docs" / "events.schema.json").read_text())
    at = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)
    agent = Agent(12, "a12")
    transitions = [*apply(agent, AgentEvent.LOGIN, at), *apply(agent, AgentEvent.READY, at),
                   *apply(agent, AgentEvent.RESERVE, at, job_id=4, call_id="4.1.1"),
                   *apply(agent, AgentEvent.CONNECT, at), *apply(agent, AgentEvent.NOT_READY, at, reason="break")]
    events = [agent_event(t) for t in transitions]
    assert [(e["previous"], e["state"], e["event"]) for e in events][2:4] == [
        ("ready", "reserved", "reserve"), ("reserved", "on_call", "connect")]
    assert events[-1]["deferred"] and events[-1]["state"] == "on_call" and events[3]["call_id"] == "4.1.1"
    for message in messages(9, "pom.agents", agent_key(12), events):
        assert message.key == "agent-12"
        value = orjson.loads(message.value)
        jsonschema.validate(value, schema)
        kinds = [k for k in ("attempt_outcome", "attempt_restricted", "job", "alarm", "agent")
                 if jsonschema.Draft202012Validator({**schema, "oneOf": [{"$ref": f"#/$defs/{k}"}]}).is_valid(value)]
        assert kinds == ["agent"]

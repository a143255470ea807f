from datetime import datetime, timezone

import ray.cloudpickle as cloudpickle

from pom_actors.core.rules import Verdict
from pom_actors.core.wire import pack, unpack
from pom_actors.media.base import Order, Outcome


def test_round_trip_through_ray_pickling_keeps_every_field():
    orders = [Order(f"{i}.1", 7, i % 3, 2, "call", f"+1212555{i:04d}", "m-1", message="hi",
                    headers={"x": "y"}, payload={"k": i}) for i in range(5)]
    outcomes = [Outcome("1.1", "busy", datetime(2026, 11, 25, 15, tzinfo=timezone.utc), {"a": 1}, 7, 2, 3)]
    verdicts = [Verdict(1, False, "dnc", "address on DNC", "dnc_restricted")]
    for cls, batch in ((Order, orders), (Outcome, outcomes), (Verdict, verdicts)):
        wire = cloudpickle.loads(cloudpickle.dumps(pack(batch)))
        assert all(type(row) is tuple for row in wire)
        assert unpack(cls, wire) == batch


def test_empty_batch():
    assert pack([]) == [] and unpack(Order, []) == []

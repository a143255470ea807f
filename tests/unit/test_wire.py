from datetime import datetime, time, timezone

import pickle

from pom_actors.core.rules import Candidate, Verdict
from pom_actors.core.windows import ContactWindow
from pom_actors.core.wire import pack, unpack
from pom_actors.core.orders import Order, OrderRecord, Outcome, Refusal

WINDOW = ContactWindow(days=["mon", "tue"], start=time(9), end=time(17, 30))


def test_round_trip_through_pickling_keeps_every_field_and_type():
    """A packed batch is one bytes object to Ray's pickler; what comes back is what went."""
    orders = [Order(f"{i}.1", 7, i % 3, 2, "call", f"+1212555{i:04d}", "m-1", message="hi",
                    headers={"x": "y"}, timeout=2.5, payload={"k": i}) for i in range(5)]
    outcomes = [Outcome("1.1", "busy", datetime(2026, 11, 25, 15, 0, 0, 123456, tzinfo=timezone.utc),
                        {"a": 1}, 7, 2, 3)]
    verdicts = [Verdict(1, False, "dnc", "address on DNC", "dnc_restricted"), Verdict(2, True, "allowed", "", None)]
    candidates = [Candidate(k, 3, 40 + k, "call", "+12125550100", ("America/New_York", "America/Chicago"),
                            WINDOW if k else None, 1, 0, "busy") for k in range(3)]
    records = [OrderRecord("1.1", "completed", 3, "busy", outcomes[0].at, {"a": 1}), OrderRecord("2.1", "pending", 3)]
    refusals = [Refusal("3.1", "stale epoch 1 < 2")]
    for cls, batch in ((Order, orders), (Outcome, outcomes), (Verdict, verdicts), (Candidate, candidates),
                       (OrderRecord, records), (Refusal, refusals)):
        wire = pickle.loads(pickle.dumps(pack(batch)))
        assert isinstance(wire, bytes)
        back = unpack(cls, wire)
        assert back == batch
        assert [type(getattr(b, f)) for b in back for f in cls.__slots__] == \
            [type(getattr(b, f)) for b in batch for f in cls.__slots__]


def test_one_window_object_per_distinct_window_in_a_batch():
    candidates = [Candidate(k, 3, k, "call", None, (), WINDOW, 0, 0, None) for k in range(4)]
    back = unpack(Candidate, pack(candidates))
    assert len({id(c.window) for c in back}) == 1


def test_empty_batch():
    assert unpack(Order, pack([])) == []

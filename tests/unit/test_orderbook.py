from datetime import datetime, timezone

from pom_actors.core.orders import Order, OrderRecord, Outcome
from pom_actors.media.orderbook import OrderBook

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def order(attempt_id: str, epoch: int = 1, job: int = 7, shard: int = 0) -> Order:
    return Order(attempt_id, job, shard, epoch, "call", "+14155550100", "mgr-1")


def test_accepts_new_orders_and_refuses_a_repeated_attempt_id():
    book = OrderBook()
    accepted, refused = book.accept([order("1.1"), order("2.1"), order("1.1")])
    assert [o.attempt_id for o in accepted] == ["1.1", "2.1"]
    assert [(r.attempt_id, r.reason) for r in refused] == [("1.1", "duplicate attempt id")]
    accepted, refused = book.accept([order("2.1", epoch=2)])
    assert accepted == [] and refused[0].reason == "duplicate attempt id"
    assert book.order_ids() == ["1.1", "2.1"]


def test_stale_epoch_is_refused_and_the_fence_only_grows():
    book = OrderBook()
    book.accept([order("1.1", epoch=4)])
    accepted, refused = book.accept([order("2.1", epoch=3), order("3.1", epoch=4),
                                     order("4.1", epoch=5), order("5.1", epoch=4)])
    assert [o.attempt_id for o in accepted] == ["3.1", "4.1"]
    assert [(r.attempt_id, r.reason) for r in refused] == [
        ("2.1", "stale epoch 3 < 4"), ("5.1", "stale epoch 4 < 5")]
    assert "2.1" not in book.lookup(["2.1"])  # a refused order is not in the record


def test_fencing_is_per_job_and_shard():
    book = OrderBook()
    book.accept([order("1.1", epoch=9, job=1, shard=0)])
    accepted, refused = book.accept([order("2.1", epoch=1, job=1, shard=1),
                                     order("3.1", epoch=1, job=2, shard=0)])
    assert len(accepted) == 2 and refused == []


def test_lookup_reports_pending_completed_and_omits_unknown_ids():
    book = OrderBook()
    book.accept([order("1.1", epoch=3), order("2.1", epoch=3)])
    book.complete(Outcome("1.1", "busy", T0, {"setup_s": 1.0}, 7, 0, 3))
    found = book.lookup(["1.1", "2.1", "9.9"])
    assert found["1.1"] == OrderRecord("1.1", "completed", 3, "busy", T0, {"setup_s": 1.0})
    assert found["2.1"] == OrderRecord("2.1", "pending", 3)
    assert "9.9" not in found


def test_first_outcome_stands_and_the_epoch_is_the_accepted_one():
    book = OrderBook()
    book.accept([order("1.1", epoch=2)])
    book.complete(Outcome("1.1", "busy", T0))  # an outcome built without fencing fields
    book.complete(Outcome("1.1", "answer_human", T0))
    record = book.lookup(["1.1"])["1.1"]
    assert (record.code, record.epoch) == ("busy", 2)
    assert book.stats()["completed"] == 1


def test_stats_count_accepted_refused_by_reason_pending_and_completed():
    book = OrderBook()
    book.accept([order("1.1", epoch=2), order("2.1", epoch=2), order("1.1"), order("3.1")])
    book.complete(Outcome("2.1", "no_answer", T0))
    assert book.stats() == {"accepted": 2, "refused": {"duplicate attempt id": 1,
                                                       "stale epoch": 1},
                            "pending": 1, "completed": 1}


def test_fence_refuses_a_deposed_holders_late_order_before_any_new_order():
    book = OrderBook()
    book.fence(7, {0: 4, 1: 2})
    book.fence(7, {0: 3})                         # fences only grow
    accepted, refused = book.accept([order("a", epoch=3, shard=0), order("b", epoch=2, shard=1),
                                     order("c", epoch=4, shard=0)])
    assert [o.attempt_id for o in accepted] == ["b", "c"]
    assert [r.attempt_id for r in refused] == ["a"] and "stale epoch 3 < 4" in refused[0].reason
    assert book.lookup(["a"]) == {}               # a refused order is not in the record

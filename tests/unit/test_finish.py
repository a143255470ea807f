from datetime import datetime, timedelta, timezone

import pydantic
import pytest

from pom_actors.core.finish import FinishCriteria, JobCounts, finish_reason

NOW = datetime(2026, 1, 14, 12, 0, tzinfo=timezone.utc)


def counts(done=10, open_=90, **by_code) -> JobCounts:
    return JobCounts(done=done, by_code=by_code, has_open=open_ > 0)


def test_no_criteria_finishes_only_when_nothing_is_open():
    assert finish_reason(None, counts(), NOW) is None
    assert finish_reason(FinishCriteria(), counts(), NOW) is None
    assert finish_reason(None, counts(done=100, open_=0), NOW) == "all contacts processed"


def test_end_time():
    criteria = FinishCriteria(end_time=NOW + timedelta(hours=1))
    assert finish_reason(criteria, counts(), NOW) is None
    assert finish_reason(criteria, counts(), NOW + timedelta(hours=1)) == "end_time reached"


def test_max_processed():
    criteria = FinishCriteria(max_processed=5000)
    assert finish_reason(criteria, counts(done=4999), NOW) is None
    assert finish_reason(criteria, counts(done=5000), NOW) == "processed 5000 contacts"


def test_goal_counts_only_goal_codes():
    criteria = FinishCriteria(goal_count=100, goal_codes=["answer_human"])
    assert finish_reason(criteria, counts(done=500, answer_human=99, busy=400), NOW) is None
    assert (finish_reason(criteria, counts(answer_human=100), NOW)
            == "goal: 100 contacts reached with answer_human")


def test_goal_over_several_codes():
    criteria = FinishCriteria(goal_count=3, goal_codes=["answer_human", "sms_delivered"])
    assert finish_reason(criteria, counts(answer_human=2, sms_delivered=1), NOW) == (
        "goal: 3 contacts reached with answer_human or sms_delivered")


def test_first_criterion_met_in_order():
    criteria = FinishCriteria(end_time=NOW, max_processed=1, goal_count=1, goal_codes=["x"])
    assert finish_reason(criteria, counts(done=1, open_=0, x=1), NOW) == "end_time reached"
    criteria = FinishCriteria(max_processed=1, goal_count=1, goal_codes=["x"])
    assert finish_reason(criteria, counts(done=1, open_=0, x=1), NOW) == "processed 1 contacts"


@pytest.mark.parametrize("kwargs", [
    {"max_processed": 0}, {"goal_count": 0, "goal_codes": ["x"]}, {"goal_count": 5},
    {"goal_codes": ["x"]}, {"end_time": datetime(2026, 1, 1)},
])
def test_bad_criteria_refused(kwargs):
    with pytest.raises(pydantic.ValidationError):
        FinishCriteria(**kwargs)

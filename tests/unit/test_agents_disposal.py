"""core.agents.disposal: which disposition of a call the ledger takes, and whether its
call-back can be dialled by the job."""
from datetime import datetime, timedelta, timezone

from pom_actors.core.agents.disposal import Disposal, disposals

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def _d(call, code, at_s=0, callback_s=None):
    return {"agent_id": 1, "call_id": call, "job_id": 7, "code": code, "at": T0 + timedelta(seconds=at_s),
            "callback_at": None if callback_s is None else T0 + timedelta(seconds=callback_s)}


def test_each_attempt_takes_its_code():
    out = disposals([_d("12.1", "sale"), _d("13.2", "no_interest")], "running", None)
    assert out == [Disposal(12, 1, "sale", T0), Disposal(13, 2, "no_interest", T0)]
    assert out[0].attempt_id == "12.1"


def test_the_later_disposition_of_a_call_wins_and_a_repeat_changes_nothing():
    first, later = _d("12.1", "sale", 0), _d("12.1", "call_back", 5, callback_s=600)
    assert disposals([later, first], "running", None) == disposals([first, later], "running", None)
    [only] = disposals([first, later, later], "running", None)
    assert (only.code, only.callback_at) == ("call_back", T0 + timedelta(seconds=600))


def test_a_disposition_without_a_placed_call_has_no_attempt():
    assert disposals([_d(None, "sale"), _d("card-3", "sale"), _d("1.x", "sale")], "running", None) == []


def test_callback_kept_while_the_job_lives_until_then():
    [d] = disposals([_d("12.1", "call_back", callback_s=600)], "paused", T0 + timedelta(hours=1))
    assert d.callback_at == d.asked_callback_at == T0 + timedelta(seconds=600) and d.callback_refused is None


def test_callback_refused_after_the_end_time_or_once_the_job_has_ended():
    [late] = disposals([_d("12.1", "call_back", callback_s=7200)], "running", T0 + timedelta(hours=1))
    assert late.callback_at is None and late.asked_callback_at is not None and "end time" in late.callback_refused
    for state in ("stopping", "completed", "stopped", "failed", None):
        [ended] = disposals([_d("12.1", "call_back", callback_s=60)], state, None)
        assert ended.callback_at is None and "ended" in ended.callback_refused
        assert ended.code == "call_back"                    # the code is still recorded

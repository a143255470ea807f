import datetime as dt

import pytest

from pom_actors.core.nextstep import NextStep, Progress, address_for, first_progress, next_step
from pom_actors.core.strategy import parse_strategy

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 9, 15, 0, tzinfo=UTC)     # Monday 11:00 in New York (EDT)
NY = ["America/New_York"]

STRATEGY = parse_strategy("""
name: steps
initial: call
custom_codes: [{name: callback, human_contact: true}, {name: gone, contact_uncallable: true}]
handlers:
  call:
    type: call
    addresses: [phone1, phone2, phone3]
    window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00"}
    results:
      answer_human: done
      busy: {action: retry, after: 10m, max: 2, otherwise: {action: next_address, otherwise: goto text}}
      no_answer: next_address
      answer_machine: goto text
      callback: {action: wait_until, at: "18:30", max: 2}
      window_restricted: wait_window
      fax: {action: retry, after: 1h, max: 1}
      gone: goto text
      default: {action: retry, after: 1h, max: 1}
  text:
    type: sms
    message: "Hi {first_name}"
    results:
      delivered: done
      sms_failed: {action: next_address}
""", ["phone3"])


def step(code: str, progress: Progress | None = None, now: dt.datetime = NOW, zones=NY, **kw) -> NextStep:
    return next_step(STRATEGY, progress or first_progress(STRATEGY), code, now, zones, **kw)


def test_first_progress_starts_at_the_initial_handler():
    assert first_progress(STRATEGY) == Progress("call", 0, {}, 0)


def test_done():
    s = step("answer_human")
    assert s.done and s.at is None and s.reason == "done answer_human"


def test_retry_counts_then_exhausts_into_otherwise():
    s1 = step("busy")
    assert not s1.done and s1.at == NOW + dt.timedelta(minutes=10)
    assert s1.progress == Progress("call", 0, {"call:busy": 1}, 0)
    assert s1.reason == "retry busy 1/2 in 600s"
    s2 = step("busy", s1.progress)
    assert s2.progress.retries == {"call:busy": 2} and s2.reason == "retry busy 2/2 in 600s"
    s3 = step("busy", s2.progress)
    assert s3.at == NOW and s3.progress.address_index == 1 and s3.progress.handler == "call"
    assert "busy retries exhausted (2)" in s3.reason and s3.reason.endswith("next address phone2")


def test_exhausted_retries_and_addresses_chain_to_goto():
    p = Progress("call", 2, {"call:busy": 2}, 5)
    s = step("busy", p)
    assert not s.done and s.progress == Progress("text", 0, {"call:busy": 2}, 5) and s.at == NOW
    assert s.reason.endswith("goto text")


def test_retry_without_otherwise_ends_done():
    s = step("network_refusal", Progress("call", 0, {"call:network_refusal": 1}))
    assert s.done and s.reason.endswith("done network_refusal")


def test_retry_counters_are_per_handler_and_code():
    s = step("call_failed", Progress("call", 0, {"call:busy": 2, "text:call_failed": 9}))
    assert not s.done and s.progress.retries["call:call_failed"] == 1


def test_the_input_progress_is_not_mutated():
    p = Progress("call", 0, {"call:busy": 1})
    step("busy", p)
    assert p == Progress("call", 0, {"call:busy": 1})


def test_goto_starts_the_target_at_its_first_address_now():
    s = step("answer_machine", Progress("call", 1, {"call:busy": 1}, 3))
    assert s.progress == Progress("text", 0, {"call:busy": 1}, 3) and s.at == NOW and s.reason == "goto text"


def test_next_address_then_exhaustion_without_otherwise():
    s = step("no_answer")
    assert s.progress.address_index == 1 and s.at == NOW and s.reason == "next address phone2"
    s = step("no_answer", Progress("call", 2))
    assert s.done and s.reason == "addresses exhausted, done no_answer"


def test_next_address_skips_empty_fields_when_given_the_contact():
    contact = {"phone1": "", "phone2": "+12125550101", "phone3": None}
    # phone1 is empty, so the attempt used phone2; the next address after it is none.
    assert address_for(STRATEGY, Progress("call"), contact) == ("phone2", "+12125550101")
    s = step("no_answer", Progress("call"), contact=contact)
    assert s.done and "addresses exhausted" in s.reason
    contact = {"phone1": "+12125550100", "phone2": " ", "phone3": "+12125550103"}
    s = step("no_answer", Progress("call"), contact=contact)
    assert s.progress.address_index == 2 and s.reason == "next address phone3"
    assert address_for(STRATEGY, s.progress, contact) == ("phone3", "+12125550103")


def test_address_for_none_left():
    assert address_for(STRATEGY, Progress("call", 1), {"phone1": "+1212555"}) == (None, None)
    assert address_for(STRATEGY, Progress("text"), {}) == (None, None)


def test_address_uncallable_code_moves_to_next_address_by_default():
    s = step("invalid_number")
    assert s.progress.address_index == 1 and s.reason == "next address phone2"
    # dnc_restricted has no processor of its own: the default processor does not override the flag.
    assert step("dnc_restricted").progress.address_index == 1


def test_explicit_processor_overrides_address_uncallable():
    s = step("fax")
    assert s.progress.address_index == 0 and s.reason == "retry fax 1/1 in 3600s"


def test_contact_uncallable_is_done_regardless():
    for code in ("in_doubt", "cancelled", "gone"):
        s = step(code)
        assert s.done and "contact uncallable" in s.reason


def test_fallback_to_default_then_done():
    s = step("call_failed")
    assert s.reason == "retry call_failed 1/1 in 3600s"
    s = step("busy", Progress("text"))           # no processor and no default at the SMS handler
    assert s.done and s.reason == "done busy"


def test_unknown_code_and_naive_time_are_refused():
    with pytest.raises(KeyError):
        step("bogus")
    with pytest.raises(ValueError):
        step("busy", now=dt.datetime(2026, 3, 9, 15))


def test_wait_until_in_the_contacts_zone():
    s = step("callback")                           # 11:00 EDT -> 18:30 EDT today
    assert s.at == dt.datetime(2026, 3, 9, 22, 30, tzinfo=UTC) and s.progress.retries == {"call:callback": 1}
    assert s.reason == "wait until 18:30 America/New_York"
    late = dt.datetime(2026, 3, 9, 23, 0, tzinfo=UTC)  # 19:00 EDT -> tomorrow
    assert step("callback", now=late).at == dt.datetime(2026, 3, 10, 22, 30, tzinfo=UTC)


def test_wait_until_uses_utc_without_zone_and_respects_dst():
    assert step("callback", zones=[]).at == dt.datetime(2026, 3, 9, 18, 30, tzinfo=UTC)
    sat = dt.datetime(2026, 3, 7, 23, 45, tzinfo=UTC)  # Sat 18:45 EST -> Sun 18:30 EDT
    assert step("callback", now=sat).at == dt.datetime(2026, 3, 8, 22, 30, tzinfo=UTC)


def test_wait_until_with_max_exhausts():
    s = step("callback", Progress("call", 0, {"call:callback": 2}))
    assert s.done and "callback waits exhausted (2)" in s.reason


def test_wait_window_waits_for_the_next_opening():
    friday_evening = dt.datetime(2026, 3, 6, 23, 0, tzinfo=UTC)   # Fri 18:00 EST
    s = step("window_restricted", now=friday_evening)
    assert s.at == dt.datetime(2026, 3, 9, 13, 0, tzinfo=UTC) and not s.done   # Mon 09:00 EDT
    assert step("window_restricted").at == NOW                               # already open


def test_wait_window_without_zone_ends():
    s = step("window_restricted", zones=[])
    assert s.done and "window does not open within 14 days" in s.reason

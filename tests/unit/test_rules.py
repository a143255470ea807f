from dataclasses import replace
from datetime import datetime, time, timedelta, timezone

import pydantic
import pytest

from pom_actors.core.nuisance import NuisanceTracker
from pom_actors.core.rules import (
    CHECK_ORDER, DEFAULT_RULES, RESTRICTION_CODES, Candidate, Rule, RuleKind, RuleSet, evaluate)
from pom_actors.core.windows import ContactWindow

# Wednesday 2026-01-14 15:00 UTC = 09:00 in Chicago, 10:00 in New York, 07:00 in Los Angeles.
NOW = datetime(2026, 1, 14, 15, 0, tzinfo=timezone.utc)
WINDOW = ContactWindow(days=["mon", "tue", "wed", "thu", "fri"], start=time(9), end=time(20))


def cand(key: int = 1, **kw) -> Candidate:
    fields = dict(key=key, campaign_id=1, contact_id=key, channel="voice", address=f"+1312555{key:04d}",
                  zones=("America/Chicago",), window=WINDOW, attempts_contact=0,
                  attempts_address=0, last_code=None)
    fields.update(kw)
    return Candidate(**fields)


def run(candidates, rules=None, now=NOW, dnc_addresses={}, dnc_contacts={}, nuisance=None):
    return evaluate(candidates, RuleSet.default() if rules is None else rules, now,
                    dnc_addresses, dnc_contacts, nuisance if nuisance is not None else NuisanceTracker())


def one(c: Candidate, **kw):
    [verdict] = run([c], **kw)
    assert verdict.key == c.key
    return verdict


def assert_restricted(verdict, kind: RuleKind, code: str):
    assert (verdict.allowed, verdict.rule, verdict.code) == (False, kind.value, code)
    assert verdict.reason


def test_allowed_verdict_names_no_rule():
    v = one(cand())
    assert (v.allowed, v.rule, v.reason, v.code) == (True, "allowed", "allowed", None)


# --- each rule kind ------------------------------------------------------------------------

@pytest.mark.parametrize("address", [None, ""])
def test_no_address(address):
    assert_restricted(one(cand(address=address)), RuleKind.NO_ADDRESS, "invalid_number")


def test_dnc_contact():
    v = one(cand(contact_id=7), dnc_contacts={(1, 7): "system"})
    assert_restricted(v, RuleKind.DNC_CONTACT, "dnc_restricted")
    assert v.reason == "contact on DNC list system"
    assert one(cand(contact_id=8), dnc_contacts={(1, 7): "system"}).allowed


def test_dnc_address():
    c = cand()
    v = one(c, dnc_addresses={(1, c.address): "opt-outs"})
    assert_restricted(v, RuleKind.DNC_ADDRESS, "dnc_restricted")
    assert v.reason == "address on DNC list opt-outs"
    assert one(c, dnc_addresses={(1, "+13125559999"): "opt-outs"}).allowed


def test_dnc_entries_count_only_for_the_campaign_whose_lists_hold_them():
    """Campaign 2's DNC list holds the address: campaign 1 may dial it, campaign 2 may not,
    in one batch."""
    hits = {(2, "+13125550001"): "campaign-2 opt-outs"}
    mine, theirs = cand(1, campaign_id=1, address="+13125550001"), cand(2, campaign_id=2, address="+13125550001")
    allowed, refused = run([mine, theirs], rules={1: RuleSet.default(), 2: RuleSet.default()}, dnc_addresses=hits)
    assert allowed.allowed
    assert_restricted(refused, RuleKind.DNC_ADDRESS, "dnc_restricted")
    assert refused.reason == "address on DNC list campaign-2 opt-outs"


def test_channel():
    rules = RuleSet.compile([Rule(kind=RuleKind.CHANNEL, params={"blocked": ["sms"]})], None)
    assert_restricted(one(cand(channel="sms"), rules=rules), RuleKind.CHANNEL, "channel_restricted")
    assert one(cand(channel="voice"), rules=rules).allowed


def test_last_code():
    rules = RuleSet.compile([Rule(kind=RuleKind.LAST_CODE, params={"codes": ["answer_human"]})], None)
    assert_restricted(one(cand(last_code="answer_human"), rules=rules),
                      RuleKind.LAST_CODE, "last_code_restricted")
    assert one(cand(last_code="busy"), rules=rules).allowed
    assert one(cand(last_code=None), rules=rules).allowed


def test_max_attempts_contact_boundary():
    # default max 10: 9 attempts made -> a 10th is allowed; 10 made -> restricted
    assert one(cand(attempts_contact=9)).allowed
    v = one(cand(attempts_contact=10))
    assert_restricted(v, RuleKind.MAX_ATTEMPTS_CONTACT, "max_attempts_restricted")
    assert "max 10" in v.reason


def test_max_attempts_address_boundary():
    assert one(cand(attempts_address=4)).allowed
    assert_restricted(one(cand(attempts_address=5)), RuleKind.MAX_ATTEMPTS_ADDRESS,
                      "max_attempts_restricted")


def test_max_attempts_count_allowed_candidates_of_the_batch():
    rules = RuleSet.compile([Rule(kind=RuleKind.MAX_ATTEMPTS_ADDRESS, params={"max": 2})], None)
    shared = "+13125550000"
    batch = [cand(k, address=shared, attempts_address=1) for k in (1, 2)]
    first, second = run(batch, rules=rules)
    assert first.allowed
    assert_restricted(second, RuleKind.MAX_ATTEMPTS_ADDRESS, "max_attempts_restricted")


def test_window_open_and_closed_in_local_time():
    assert one(cand(zones=("America/Chicago",))).allowed            # 09:00 local: open
    v = one(cand(zones=("America/Los_Angeles",)))                   # 07:00 local: closed
    assert_restricted(v, RuleKind.WINDOW, "window_restricted")
    assert v.reason == "outside window in America/Los_Angeles"


def test_window_edges_through_windows_module():
    # start is inclusive, end exclusive (windows.py): 09:00 Chicago open, 08:59:59 closed,
    # 19:59:59 open, 20:00 closed
    assert one(cand(), now=NOW).allowed
    assert not one(cand(), now=NOW - timedelta(seconds=1)).allowed
    assert one(cand(), now=NOW + timedelta(hours=11) - timedelta(seconds=1)).allowed
    assert_restricted(one(cand(), now=NOW + timedelta(hours=11)), RuleKind.WINDOW, "window_restricted")


def test_window_weekday_in_local_time():
    # Saturday 03:00 UTC is still Friday 21:00 in Chicago (closed: after 20:00) and Friday
    # 19:00 in Los Angeles (open)
    sat_utc = datetime(2026, 1, 17, 3, 0, tzinfo=timezone.utc)
    assert one(cand(zones=("America/Los_Angeles",)), now=sat_utc).allowed
    assert not one(cand(zones=("America/Chicago",)), now=sat_utc).allowed


def test_multi_zone_number_restricted_when_one_zone_closed():
    v = one(cand(zones=("America/Chicago", "America/Los_Angeles", "America/New_York")))
    assert_restricted(v, RuleKind.WINDOW, "window_restricted")
    assert v.reason == "outside window in America/Los_Angeles"
    later = NOW + timedelta(hours=2)  # 09:00 in Los Angeles, open everywhere
    assert one(cand(zones=("America/Chicago", "America/Los_Angeles")), now=later).allowed


def test_unknown_zone_is_restricted():
    v = one(cand(zones=()))
    assert_restricted(v, RuleKind.WINDOW, "window_restricted")
    assert "time zone" in v.reason


def test_no_window_is_open():
    assert one(cand(window=None, zones=("America/Los_Angeles",))).allowed


def test_window_rule_disabled_for_campaign():
    rules = RuleSet.compile([Rule(kind=RuleKind.WINDOW, campaign_id=1, enabled=False)], 1)
    assert one(cand(zones=("America/Los_Angeles",)), rules=rules).allowed


# --- nuisance -----------------------------------------------------------------------------

def test_nuisance_across_campaigns_and_after_period():
    tracker = NuisanceTracker()
    rules = {1: RuleSet.default(), 2: RuleSet.default()}
    address = "+13125550001"
    allowed = []
    for i, campaign in enumerate((1, 2, 1)):
        [v] = evaluate([cand(i, campaign_id=campaign, address=address, window=None)], rules,
                       NOW + timedelta(hours=i), {}, {}, tracker)
        allowed.append(v.allowed)
    assert allowed == [True, True, True]
    [fourth] = evaluate([cand(9, campaign_id=2, address=address, window=None)], rules, NOW + timedelta(hours=3),
                        {}, {}, tracker)
    assert_restricted(fourth, RuleKind.NUISANCE, "nuisance_restricted")
    assert "max 3" in fourth.reason
    # the first attempt (at NOW) leaves the 24 h period at NOW + 24 h exactly
    just_before = NOW + timedelta(hours=24) - timedelta(seconds=1)
    late = cand(10, address=address, window=None)
    assert run([late], now=just_before, nuisance=tracker)[0].rule == RuleKind.NUISANCE
    assert run([late], now=NOW + timedelta(hours=24), nuisance=tracker)[0].allowed


def test_nuisance_two_in_one_batch_count():
    rules = RuleSet.compile([Rule(kind=RuleKind.NUISANCE, params={"max": 1, "period_s": 3600})], None)
    address = "+13125550002"
    first, second = run([cand(1, address=address), cand(2, address=address)], rules=rules)
    assert first.allowed
    assert_restricted(second, RuleKind.NUISANCE, "nuisance_restricted")


def test_restricted_candidates_are_not_recorded():
    tracker = NuisanceTracker()
    c = cand(zones=("America/Los_Angeles",))   # window-restricted
    assert not run([c], nuisance=tracker)[0].allowed
    assert tracker.count(c.address, NOW - timedelta(days=1)) == 0
    assert run([cand()], nuisance=tracker)[0].allowed
    assert tracker.count(cand().address, NOW - timedelta(days=1)) == 1


# --- rule sets ---------------------------------------------------------------------------

def test_campaign_rule_overrides_system_rule():
    rows = [Rule(kind=RuleKind.MAX_ATTEMPTS_CONTACT, params={"max": 3}),
            Rule(kind=RuleKind.MAX_ATTEMPTS_CONTACT, campaign_id=1, params={"max": 5}),
            Rule(kind=RuleKind.CHANNEL, campaign_id=2, params={"blocked": ["voice"]})]
    c1, c2 = RuleSet.compile(rows, 1), RuleSet.compile(rows, 2)
    assert c1.max_contact == 5 and c2.max_contact == 3
    assert one(cand(attempts_contact=4), rules=c1).allowed
    assert_restricted(one(cand(attempts_contact=4, campaign_id=2, channel="sms"), rules=c2),
                      RuleKind.MAX_ATTEMPTS_CONTACT, "max_attempts_restricted")
    assert not c1.enabled(RuleKind.CHANNEL)          # another campaign's rule does not leak
    assert_restricted(one(cand(campaign_id=2), rules={1: c1, 2: c2}), RuleKind.CHANNEL,
                      "channel_restricted")


def test_campaign_can_disable_system_rule_and_system_rule_can_be_disabled():
    rows = [Rule(kind=RuleKind.NUISANCE, params={"max": 1, "period_s": 60}),
            Rule(kind=RuleKind.NUISANCE, campaign_id=1, enabled=False),
            Rule(kind=RuleKind.DNC_CONTACT, enabled=False)]
    assert not RuleSet.compile(rows, 1).enabled(RuleKind.NUISANCE)
    assert RuleSet.compile(rows, 2).nuisance_max == 1
    assert not RuleSet.compile(rows, None).enabled(RuleKind.DNC_CONTACT)
    assert one(cand(contact_id=3), rules=RuleSet.compile(rows, 1), dnc_contacts={(1, 3): "system"}).allowed
    with pytest.raises(pydantic.ValidationError, match="params.max"):
        Rule(kind=RuleKind.NUISANCE, enabled=False, params={"max": 0, "period_s": 60})


def test_compliance_rules_on_without_rows():
    rs = RuleSet.compile([], 1)
    assert {k for k in RuleKind if rs.enabled(k)} == {
        RuleKind.DNC_ADDRESS, RuleKind.DNC_CONTACT, RuleKind.WINDOW, RuleKind.NO_ADDRESS}
    assert rs.max_contact is None and rs.nuisance_max is None


def test_default_rule_set():
    rs = RuleSet.default()
    assert (rs.max_contact, rs.max_address, rs.nuisance_max, rs.nuisance_period_s) == (10, 5, 3, 86400)
    assert not rs.enabled(RuleKind.CHANNEL) and not rs.enabled(RuleKind.LAST_CODE)
    assert len(DEFAULT_RULES) == 7


def test_duplicate_rows_of_one_scope_are_refused():
    rows = [Rule(kind=RuleKind.WINDOW, campaign_id=4), Rule(kind=RuleKind.WINDOW, campaign_id=4)]
    with pytest.raises(ValueError, match="two campaign 4 rules of kind window"):
        RuleSet.compile(rows, 4)
    assert RuleSet.compile(rows, 5).enabled(RuleKind.WINDOW)   # not this campaign's rows


def test_missing_campaign_rule_set_is_an_error():
    with pytest.raises(KeyError, match="campaign 1"):
        run([cand()], rules={2: RuleSet.default()})


def test_naive_now_refused():
    with pytest.raises(ValueError):
        run([cand()], now=NOW.replace(tzinfo=None))


@pytest.mark.parametrize("kind, params, fault", [
    (RuleKind.MAX_ATTEMPTS_CONTACT, {"max": 0}, "params.max"),
    (RuleKind.MAX_ATTEMPTS_ADDRESS, {}, "params.max"),
    (RuleKind.MAX_ATTEMPTS_ADDRESS, {"max": "3"}, "params.max"),
    (RuleKind.NUISANCE, {"max": 3, "period_s": 0}, "params.period_s"),
    (RuleKind.NUISANCE, {"max": 3}, "params.period_s"),
    (RuleKind.CHANNEL, {"blocked": "sms"}, "params.blocked"),
    (RuleKind.LAST_CODE, {"codes": [""]}, "params.codes"),
    (RuleKind.DNC_ADDRESS, {"max": 1}, "params.max"),
])
def test_bad_params_are_refused_clearly(kind, params, fault):
    with pytest.raises(pydantic.ValidationError) as err:
        Rule(kind=kind, params=params)
    assert f"{kind.value} rule" in str(err.value) and fault in str(err.value)


def test_params_are_normalised():
    assert Rule(kind=RuleKind.NUISANCE, params={"max": 2, "period_s": 60}).params == {
        "max": 2, "period_s": 60.0}
    with pytest.raises(pydantic.ValidationError):
        Rule(kind="no_such_rule")


# --- order of checks ---------------------------------------------------------------------

def test_order_of_checks_first_restriction_decides():
    rules = RuleSet.compile(
        list(DEFAULT_RULES) + [Rule(kind=RuleKind.CHANNEL, params={"blocked": ["voice"]}),
                               Rule(kind=RuleKind.LAST_CODE, params={"codes": ["refused"]})], None)
    tracker = NuisanceTracker()
    worst = cand(contact_id=5, address="+13125550005", zones=("America/Los_Angeles",),
                 last_code="refused", attempts_contact=10, attempts_address=5)
    for _ in range(3):
        tracker.record(worst.address, NOW - timedelta(minutes=1))
    dnc_a, dnc_c = {(1, worst.address): "system"}, {(1, worst.contact_id): "system"}
    # lift each fault in check order; the next kind in the order must decide
    steps = [
        (RuleKind.NO_ADDRESS, dict(address=None)),
        (RuleKind.DNC_CONTACT, dict(address=worst.address)),
        (RuleKind.DNC_ADDRESS, dict(contact_id=6)),
        (RuleKind.CHANNEL, dict(address="+13125550006")),
        (RuleKind.LAST_CODE, dict(channel="sms")),
        (RuleKind.MAX_ATTEMPTS_CONTACT, dict(last_code=None)),
        (RuleKind.MAX_ATTEMPTS_ADDRESS, dict(attempts_contact=0)),
        (RuleKind.WINDOW, dict(attempts_address=0)),
    ]
    c = worst
    seen = []
    for kind, change in steps:
        c = replace(c, **change)
        [v] = evaluate([c], rules, NOW, dnc_a, dnc_c, tracker)
        assert v.rule == kind.value
        seen.append(kind)
    c = replace(c, zones=("America/Chicago",), address=worst.address, contact_id=7)
    [v] = evaluate([c], rules, NOW, {}, {}, tracker)
    assert_restricted(v, RuleKind.NUISANCE, "nuisance_restricted")
    assert tuple(seen) + (RuleKind.NUISANCE,) == CHECK_ORDER


def test_every_kind_has_a_restriction_code():
    assert set(RESTRICTION_CODES) == set(RuleKind) == set(CHECK_ORDER)


def test_large_batch_shares_window_evaluation():
    batch = [cand(k, zones=("America/Chicago", "America/New_York")) for k in range(2000)]
    verdicts = run(batch)
    assert [v.key for v in verdicts] == list(range(2000))
    assert all(v.allowed for v in verdicts)


def test_zones_given_as_a_list_work():
    assert one(cand(zones=["America/Chicago"])).allowed
    assert not one(cand(zones=["America/Chicago", "America/Los_Angeles"])).allowed

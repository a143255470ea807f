"""Every answer a gateway can give about an attempt, and what the ledger records for it."""
from datetime import datetime, timedelta, timezone

import pytest

from pom_actors.core.orders import OrderRecord
from pom_actors.core.reconcile import IN_DOUBT, NOT_SENT, GatewayUnreachable, not_sent, reconcile

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)
EARLIER = NOW - timedelta(seconds=40)


def test_a_completed_record_is_the_outcome_at_the_gateways_time_with_its_details():
    outcome = reconcile("7.2", OrderRecord("7.2", "completed", 3, "answer_human", EARLIER,
                                           {"ring_s": 4, "agent_id": 15}), NOW)
    assert (outcome.attempt_id, outcome.code, outcome.at) == ("7.2", "answer_human", EARLIER)
    # the agent a bridged call was put through to: the adopting manager frees it, the ledger names it
    assert outcome.details == {"ring_s": 4, "agent_id": 15, "adopted": True} and not not_sent(outcome)


def test_a_pending_record_decides_nothing_yet():
    assert reconcile("7.2", OrderRecord("7.2", "pending", 3), NOW) is None


def test_no_record_means_never_sent_and_safe_to_retry():
    outcome = reconcile("7.2", None, NOW)
    assert (outcome.code, outcome.at) == (NOT_SENT, NOW) and not_sent(outcome)


def test_a_gateway_gone_leaves_the_attempt_in_doubt():
    outcome = reconcile("7.2", GatewayUnreachable("pom-gateway-abc-1"), NOW)
    assert (outcome.code, outcome.at) == (IN_DOUBT, NOW) and not not_sent(outcome)
    assert "pom-gateway-abc-1" in outcome.details["reason"]


def test_a_gateways_own_cancelled_is_a_result_not_the_never_sent_marker():
    outcome = reconcile("7.2", OrderRecord("7.2", "completed", 3, NOT_SENT, EARLIER), NOW)
    assert outcome.code == NOT_SENT and not not_sent(outcome)


def test_an_unknown_record_state_is_refused():
    with pytest.raises(ValueError):
        reconcile("7.2", OrderRecord("7.2", "exploded", 3), NOW)

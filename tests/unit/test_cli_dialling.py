"""The CLI of several lists per campaign and the dialling order: `pom jobs set --dialling-order`,
`pom jobs prioritize` and `pom campaigns update --lists` build their requests or exit 2 first."""
from __future__ import annotations

import pytest

from api.cli import parser
from api.cli_jobs import changes


def test_pom_jobs_set_dialling_order_builds_the_patch():
    args = parser().parse_args(["jobs", "set", "3", "--dialling-order", "retries, priority,regular"])
    assert changes(args) == {"dialling_order": ["retries", "priority", "regular"]}


@pytest.mark.parametrize("bad", ["retries,priority", "retries,retries,regular", "vip,retries,regular", ""])
def test_pom_jobs_set_refuses_a_dialling_order_before_any_request(bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["jobs", "set", "3", "--dialling-order", bad])
    assert exit_.value.code == 2 and "--dialling-order" in capsys.readouterr().err


def test_pom_jobs_prioritize_and_campaigns_update_lists():
    args = parser().parse_args(["jobs", "prioritize", "3", "17", "18"])
    assert (args.job, args.contacts) == (3, [17, 18])
    args = parser().parse_args(["campaigns", "update", "2", "--lists", '[{"list_id": 4, "priority": 9}]'])
    assert args.lists == [{"list_id": 4, "priority": 9}]
    with pytest.raises(SystemExit):
        parser().parse_args(["campaigns", "update", "2", "--lists", "[{list_id: 4}]"])

import pytest
from hypothesis import given, settings, strategies as st

from pom_actors import names
from pom_actors.core.zones import (
    Zone, ZoneError, ZoneState, chain, check_failover, check_name, effective_zone, parse_state,
    servers_by_zone, status)

UP, DOWN, MAINT = ZoneState.UP, ZoneState.DOWN, ZoneState.MAINTENANCE


def zones(*rows: Zone) -> dict[str, Zone]:
    return {z.name: z for z in rows}


def test_the_first_schemas_active_reads_as_up():
    assert parse_state("active") == UP
    assert parse_state("maintenance") == MAINT
    with pytest.raises(ValueError):
        parse_state("sleeping")


@pytest.mark.parametrize("name", ["a", "east-1", "dc2.rack_3", "0"])
def test_names_that_are_accepted(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "East", "-a", "a b", "a:b", "a/b", "x" * 64, None])
def test_names_that_are_refused(name):
    with pytest.raises(ZoneError) as err:
        check_name(name)
    assert err.value.field == "name"


def test_a_job_runs_in_its_own_zone_while_it_is_up_with_servers():
    z = zones(Zone("a", UP, "b"), Zone("b"))
    assert effective_zone("a", z, {"a": 1, "b": 2}) == "a"


@pytest.mark.parametrize("state", [DOWN, MAINT])
def test_a_zone_set_down_or_in_maintenance_sends_its_jobs_to_its_failover(state):
    z = zones(Zone("a", state, "b"), Zone("b"))
    assert effective_zone("a", z, {"a": 3, "b": 1}) == "b"


def test_a_zone_without_a_live_server_counts_as_down():
    z = zones(Zone("a", UP, "b"), Zone("b"))
    assert effective_zone("a", z, {"b": 1}) == "b"
    assert status(z["a"], {"b": 1}) == "down"
    assert status(z["a"], {"a": 1}) == "up"
    assert status(Zone("m", MAINT), {"m": 1}) == "maintenance"


def test_the_chain_is_followed_past_unavailable_zones_and_back_home_when_up_again():
    z = zones(Zone("a", DOWN, "b"), Zone("b", MAINT, "c"), Zone("c"))
    assert effective_zone("a", z, {"a": 1, "b": 1, "c": 1}) == "c"
    z["a"] = Zone("a", UP, "b")
    assert effective_zone("a", z, {"a": 1, "b": 1, "c": 1}) == "a"


def test_no_zone_available_means_the_job_waits():
    z = zones(Zone("a", UP, "b"), Zone("b", DOWN))
    assert effective_zone("a", z, {"b": 4}) is None
    assert effective_zone("a", zones(Zone("a")), {}) is None


def test_a_zone_with_no_row_is_up_without_failover():
    assert effective_zone("default", {}, {"default": 1}) == "default"
    assert effective_zone("default", {}, {"other": 1}) is None


def test_a_failover_must_exist_and_not_be_itself():
    z = zones(Zone("a"), Zone("b"))
    check_failover(z, "a", "b")
    check_failover(z, "a", None)
    for bad in ("a", "nowhere", "Bad Name"):
        with pytest.raises(ZoneError) as err:
            check_failover(z, "a", bad)
        assert err.value.field == "failover_zone"


def test_a_failover_that_closes_a_cycle_is_refused_with_the_cycle():
    z = zones(Zone("a", failover="b"), Zone("b", failover="c"), Zone("c"))
    with pytest.raises(ZoneError, match="c -> a -> b -> c"):
        check_failover(z, "c", "a")
    check_failover(z, "c", None)


def test_a_cycle_already_stored_is_walked_once():
    z = zones(Zone("a", DOWN, "b"), Zone("b", DOWN, "a"))
    assert chain(z, "a") == ["a", "b"]
    assert effective_zone("a", z, {"a": 1, "b": 1}) is None


def test_servers_are_counted_by_their_zone_resource():
    nodes = [names.server_resources("a"), names.server_resources("a"), names.server_resources(),
             {names.SERVER_RESOURCE: 1.0, "CPU": 2.0, "node:127.0.0.1": 1.0}]
    assert servers_by_zone(nodes) == {"a": 2, names.DEFAULT_ZONE: 1, None: 1}


NAMES = st.sampled_from("abcdef")


@given(st.dictionaries(NAMES, st.tuples(st.sampled_from(list(ZoneState)), st.none() | NAMES)),
       st.dictionaries(NAMES, st.integers(0, 2)), NAMES)
@settings(max_examples=300, deadline=None, derandomize=True)
def test_the_zone_chosen_is_available_and_on_the_chain(rows, servers, home):
    z = {n: Zone(n, s, f) for n, (s, f) in rows.items()}
    walk = chain(z, home)
    assert len(walk) == len(set(walk)) <= len(z) + 1
    chosen = effective_zone(home, z, servers)
    if chosen is None:
        assert not any((z.get(n) or Zone(n)).state == UP and servers.get(n, 0) for n in walk)
    else:
        assert chosen in walk and servers.get(chosen, 0) > 0
        assert all(not ((z.get(n) or Zone(n)).state == UP and servers.get(n, 0)) for n in walk[:walk.index(chosen)])


@given(st.lists(st.tuples(NAMES, st.none() | NAMES), max_size=20))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_failovers_accepted_one_by_one_never_make_a_cycle(changes):
    z: dict[str, Zone] = {n: Zone(n) for n in "abcdef"}
    for name, failover in changes:
        try:
            check_failover(z, name, failover)
        except ZoneError:
            continue
        z[name] = Zone(name, UP, failover)
    for start in z:                 # following the pointers themselves ends within len(z) steps
        zone, steps = start, 0
        while zone is not None:
            zone, steps = z[zone].failover, steps + 1
            assert steps <= len(z), f"cycle through {start}"

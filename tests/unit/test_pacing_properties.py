"""Properties every pacer keeps on arbitrary snapshots: a dial count is never negative, never
beyond the port room, and never unbounded."""
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from pom_actors.core.pacing import (MODES, InboundQueue, PacerSnapshot, PreviewOffer,
                                    RuleCounters, make_pacer)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
ages = st.lists(st.floats(min_value=0, max_value=4000, allow_nan=False), max_size=40).map(tuple)
CONFIGS = {
    "preview": {"mode": "preview"},
    "progressive": {"mode": "progressive", "ratio": 3.0},
    "predictive": {"mode": "predictive"},
    "cruise_control": {"mode": "cruise_control"},
    "time_based": {"mode": "time_based", "rate": 50, "per": "second", "max_concurrent": 30},
    "skill_based": {"mode": "skill_based"},
}


@st.composite
def snapshots(draw, t: float = 0.0):
    answered = draw(st.integers(0, 100000))
    offers = tuple(PreviewOffer(f"a{i}", f"c{i}", draw(st.floats(0, 100)),
                                draw(st.sampled_from(["shown", "accepted", "skipped", "cancelled"])),
                                draw(st.sampled_from([None, "skip", "odd"])))
                   for i in range(draw(st.integers(0, 8))))
    ready = draw(ages)
    return PacerSnapshot(
        now=T0 + timedelta(seconds=t), ready=ready, talking=draw(ages), wrapping=draw(ages),
        dialling=draw(st.lists(st.floats(0, 60), max_size=80).map(tuple)),
        waiting=draw(st.lists(st.floats(0, 5), max_size=5).map(tuple)),
        counters=RuleCounters(answered, draw(st.integers(0, answered)), draw(st.integers(0, 5000)),
                              draw(st.integers(0, answered))),
        ports_cap=draw(st.one_of(st.none(), st.integers(0, 200))),
        ready_ids=tuple(f"r{i}" for i in range(len(ready))), offers=offers,
        inbound=draw(st.one_of(st.none(), st.builds(InboundQueue, st.integers(0, 50), st.floats(0, 100)))),
    )


def test_every_mode_is_covered():
    assert set(CONFIGS) == set(MODES)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(CONFIGS)), st.lists(snapshots(), min_size=1, max_size=6))
def test_dials_are_bounded_and_within_the_port_cap(mode, snaps):
    pacer = make_pacer(CONFIGS[mode])
    for i, s in enumerate(snaps):
        s = PacerSnapshot(**{**{f: getattr(s, f) for f in s.__dataclass_fields__},
                             "now": T0 + timedelta(seconds=2 * i)})
        d = pacer.decide(s)
        assert d.dials >= 0
        room = s.port_room()
        if room is not None:
            assert d.dials <= room
        if mode in ("predictive", "cruise_control"):
            assert d.dials <= 10 * s.staffed
        elif mode in ("progressive", "skill_based"):
            assert d.dials <= 3 * len(s.ready)
        elif mode == "preview":
            assert d.dials == len(d.dial_for) <= len(s.offers)
        else:
            assert d.dials <= 30

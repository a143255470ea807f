"""HeapKeeper: what survived is frozen out of the automatic collections at most every
`every_s`; one full collection every `full_every_s` still finds garbage cycles among it."""
from __future__ import annotations

import gc
import weakref

from pom_actors.heap import HeapKeeper


class Cycle:
    def __init__(self):
        self.me = self


def test_settle_freezes_at_most_every_period_and_collects_frozen_cycles_at_the_full_period():
    now = [0.0]
    keeper = HeapKeeper(every_s=1.0, full_every_s=10.0, clock=lambda: now[0])
    try:
        assert not keeper.settle()                       # not a period yet
        young = weakref.ref(Cycle())                     # garbage before the freeze: collected by it
        now[0] = 1.0
        kept = Cycle()
        old = weakref.ref(kept)
        assert keeper.settle() and young() is None and gc.get_freeze_count() > 0
        now[0] = 1.5
        frozen = gc.get_freeze_count()
        assert not keeper.settle() and gc.get_freeze_count() == frozen
        del kept                                         # a garbage cycle among frozen objects:
        gc.collect()
        assert old() is not None                         # no collection sees it ...
        now[0] = 10.0
        assert keeper.settle() and keeper.full == 1      # ... but the full pass
        assert old() is None
    finally:
        gc.unfreeze()

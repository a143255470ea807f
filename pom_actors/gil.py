"""How long a thread keeps the GIL while another waits for it, in the processes whose event
loop shares the interpreter with threads that run Python: a Campaign Manager's and the Agent
Manager's PostgreSQL statements (a worker thread each), a gateway's request threads and Ray's.

A thread that wants the GIL waits until its holder is asked to drop it, CPython's switch
interval (5 ms by default) after it asked. An event loop with a screen pop to pass on may wait
that long each time a worker thread is building a COPY or a JSON document; 1 ms bounds the
wait, at the cost of more switches while both run (bench/agents.py, docs/benchmarks.md)."""
from __future__ import annotations

import sys

SWITCH_INTERVAL_S = 0.001


def favour_the_event_loop() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S)

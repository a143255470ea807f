"""Ports for servers a test starts, chosen below the kernel's ephemeral range.

A port found free by binding port 0 comes from the ephemeral range, the same range every
`bind(0)` and outgoing connection draws from. Between the test choosing it and its server
binding it, Ray (which starts a dozen processes, each binding several port-0 sockets) can take
it: once in CI, `pom run`'s gateway found its port taken and never served. Below that range
(and above Ray's worker ports, 10002-19999) only a server given the port explicitly binds it.
"""
from __future__ import annotations

import random
import socket

LOW, HIGH = 20000, 32767      # Linux's ip_local_port_range starts at 32768 by default


def free_port() -> int:
    """A loopback TCP port outside the ephemeral range that is free now."""
    for _ in range(200):
        port = random.randint(LOW, HIGH)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {LOW}-{HIGH}")

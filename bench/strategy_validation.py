"""Strategy validation at its bound (docs/strategy.md): a goto chain and a goto cycle through the
most handlers, the cycle with eight codes named in every handler's results, a chain at both caps
(the most handlers and the most custom codes, eight of them named in every handler's results:
the strategy tests/integration/test_api_hostile.py posts), and a document five times over the
bound (refused by counting). Prints one JSON line: each case's median ms of 5."""
from __future__ import annotations

import json
import statistics
import time

from pom_actors.core.strategy import MAX_CUSTOM_CODES, MAX_HANDLERS, StrategyError, parse_strategy

CODES = ("busy", "no_answer", "answer_machine", "call_failed", "network_refusal", "timeout", "abandoned", "default")


def ring(n: int, close: bool, codes: tuple[str, ...] = ("default",)) -> dict:
    names = [f"h{i:04d}" for i in range(n)]
    return {"name": "bench", "initial": names[0], "handlers": {
        name: {"type": "call", "results": {
            code: f"goto {names[(i + 1) % n]}" if close or i + 1 < n else "done" for code in codes}}
        for i, name in enumerate(names)}}


def at_the_caps() -> dict:
    doc = ring(MAX_HANDLERS, False, tuple(f"c{i:03d}" for i in range(8)) + ("default",))
    doc["custom_codes"] = [f"c{i:03d}" for i in range(MAX_CUSTOM_CODES)]
    return doc


def median_ms(doc: dict) -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        try:
            parse_strategy(doc)
        except StrategyError:
            pass
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def main() -> None:
    print(json.dumps({"handlers": MAX_HANDLERS,
                      "chain_ms": median_ms(ring(MAX_HANDLERS, False)),
                      "cycle_ms": median_ms(ring(MAX_HANDLERS, True)),
                      "cycle_8_codes_ms": median_ms(ring(MAX_HANDLERS, True, CODES)),
                      "at_the_caps_ms": median_ms(at_the_caps()),
                      "over_bound_5x_ms": median_ms(ring(5 * MAX_HANDLERS, True))}))


if __name__ == "__main__":
    main()

"""Batches of slotted dataclasses as lists of plain tuples, for Ray actor calls.

Ray pickles a dataclass through Python's reduce protocol, ~6-12 µs per object each way; a
tuple of plain values goes through the C pickler. Packing a batch of orders, outcomes,
candidates or verdicts this way costs 4-5x less CPU on both sides of the call.
"""
from __future__ import annotations

from dataclasses import fields
from functools import cache
from operator import attrgetter
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")


@cache
def _getter(cls: type) -> Callable[[Any], tuple]:
    names = [f.name for f in fields(cls)]
    getter = attrgetter(*names)
    return getter if len(names) > 1 else (lambda obj: (getter(obj),))


def pack(items: Iterable[Any]) -> list[tuple]:
    """The field values of each dataclass instance, in declaration order."""
    items = list(items)
    if not items:
        return []
    get = _getter(type(items[0]))
    return [get(item) for item in items]


def unpack(cls: type[T], rows: Iterable[tuple]) -> list[T]:
    return [cls(*row) for row in rows]

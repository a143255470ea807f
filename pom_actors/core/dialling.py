"""Which due work items a claim takes first: a campaign's lists and a job's dialling order.

A job's due items are of three kinds (`kind_of`):

* **priority** — a contact added to the running job as a priority contact, not yet attempted;
* **retries** — an item attempted before and due again (a retry, the next address or handler,
  an attempt a rule put off);
* **regular** — every other item not yet attempted.

The job's **dialling order** ranks the kinds (default: priority, retries, regular) and can
change while the job runs: a claim takes items of a kind only when the items due of the kinds
before it are fewer than the batch. Within priority and regular items the campaign's
**lists** rank them: the list of higher priority (10 highest, 1 lowest) first, then the
list's **sort order** over contact fields and attributes, then the contact id — one number per
item, its `rank`, fixed when the item is created (`rank_base` + the place in its list). Retries
are taken by the time they fell due, the longest waiting first.

Pure: the store (store/dialling.py) writes the ranks and the claim orders by them; the checks
here are what the API and the store refuse.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .filters import FIELDS, MAX_NAME

PRIORITY, RETRIES, REGULAR = "priority", "retries", "regular"
KINDS = (PRIORITY, RETRIES, REGULAR)
DEFAULT_ORDER = KINDS
PRIORITY_MIN, PRIORITY_MAX, PRIORITY_DEFAULT = 1, 10, 5
MAX_LISTS = 20
MAX_SORT_KEYS = 4
ATTRIBUTE_TYPES = ("text", "number", "date", "bool")    # how an attribute is read (as in filters)
DIRECTIONS = ("asc", "desc")
RANK_BITS = 40                         # places within a list: up to 2^40 contacts
ATTRIBUTE_PREFIX = "attr."


class ListsError(ValueError):
    """Lists, a sort order or a dialling order refused; `field` names the input at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def dialling_order(value: Any, field: str = "dialling_order") -> tuple[str, ...]:
    """The kinds in the order a claim takes them: each of KINDS exactly once."""
    if not isinstance(value, (list, tuple)):
        raise ListsError(field, f"must be a list of {', '.join(KINDS)} in the order to dial them")
    for i, kind in enumerate(value):
        if kind not in KINDS:
            raise ListsError(f"{field}.{i}", f"{kind!r} is not one of {', '.join(KINDS)}")
        if kind in value[:i]:
            raise ListsError(f"{field}.{i}", f"{kind!r} is named twice")
    if len(value) != len(KINDS):
        missing = [k for k in KINDS if k not in value]
        raise ListsError(field, f"names every kind once: {', '.join(missing)} missing")
    return tuple(value)


@dataclass(frozen=True)
class SortKey:
    """One key of a list's sort order: a contact field, or a custom attribute read as `type`."""
    field: str
    type: str = "text"
    descending: bool = False

    @property
    def attribute(self) -> str | None:
        return self.field[len(ATTRIBUTE_PREFIX):] if self.field.startswith(ATTRIBUTE_PREFIX) else None

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "type": self.type, "order": "desc" if self.descending else "asc"}


def sort_key(value: Any, field: str, attributes: Iterable[str] | None = None) -> SortKey:
    """A sort key from `{"field": "last_name" | "attr.NAME", "type": ..., "order": "asc"|"desc"}`.
    A contact field has its own type; an attribute is read as `type` (default text), and must be
    one the list declares when `attributes` is given. Values that are not of the type sort last."""
    if not isinstance(value, Mapping):
        raise ListsError(field, 'must be an object like {"field": "attr.balance", "type": "number", "order": "desc"}')
    unknown = sorted(set(value) - {"field", "type", "order"})
    if unknown:
        raise ListsError(f"{field}.{unknown[0]}", "is not a sort key's member (field, type, order)")
    name, order = value.get("field"), value.get("order", "asc")
    if order not in DIRECTIONS:
        raise ListsError(f"{field}.order", "must be asc or desc")
    if not isinstance(name, str):
        raise ListsError(f"{field}.field", "must name a contact field or attr.NAME")
    if name.startswith(ATTRIBUTE_PREFIX):
        attr = name[len(ATTRIBUTE_PREFIX):]
        if not 1 <= len(attr) <= MAX_NAME:
            raise ListsError(f"{field}.field", f"an attribute name has 1 to {MAX_NAME} characters")
        if attributes is not None and attr not in set(attributes):
            raise ListsError(f"{field}.field", f"the list declares no attribute {attr!r}")
        kind = value.get("type", "text")
        if kind not in ATTRIBUTE_TYPES:
            raise ListsError(f"{field}.type", f"an attribute is read as one of {', '.join(ATTRIBUTE_TYPES)}")
    elif name in FIELDS:
        kind = FIELDS[name]
        if value.get("type", kind) != kind:
            raise ListsError(f"{field}.type", f"{name} is a {kind} field")
    else:
        raise ListsError(f"{field}.field", f"{name!r} is not a contact field ({', '.join(FIELDS)}) "
                                           "or a custom attribute (attr.NAME)")
    return SortKey(name, kind, order == "desc")


@dataclass(frozen=True)
class CampaignList:
    """A contact list of a campaign with its priority and sort order."""
    list_id: int
    priority: int = PRIORITY_DEFAULT
    sort: tuple[SortKey, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"list_id": self.list_id, "priority": self.priority, "sort": [k.as_dict() for k in self.sort]}


def campaign_list(value: Any, field: str, attributes: Iterable[str] | None = None) -> CampaignList:
    """A CampaignList from `{"list_id": N, "priority": 1..10, "sort": [...]}`."""
    if not isinstance(value, Mapping):
        raise ListsError(field, 'must be an object like {"list_id": 1, "priority": 5, "sort": []}')
    unknown = sorted(set(value) - {"list_id", "priority", "sort"})
    if unknown:
        raise ListsError(f"{field}.{unknown[0]}", "is not a campaign list's member (list_id, priority, sort)")
    list_id, priority = value.get("list_id"), value.get("priority", PRIORITY_DEFAULT)
    if not _integer(list_id) or list_id < 1:
        raise ListsError(f"{field}.list_id", "must be a list id")
    if not _integer(priority) or not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise ListsError(f"{field}.priority", f"must be an integer within {PRIORITY_MIN}..{PRIORITY_MAX}")
    keys = value.get("sort") or []
    if not isinstance(keys, (list, tuple)) or len(keys) > MAX_SORT_KEYS:
        raise ListsError(f"{field}.sort", f"must be a list of at most {MAX_SORT_KEYS} sort keys")
    return CampaignList(list_id, priority,
                        tuple(sort_key(k, f"{field}.sort.{i}", attributes) for i, k in enumerate(keys)))


def campaign_lists(value: Any, field: str = "lists",
                   attributes: Mapping[int, Iterable[str]] | None = None) -> tuple[CampaignList, ...]:
    """A campaign's lists, the highest priority first (ties: as given); each list once, 1 to
    MAX_LISTS of them. `attributes`: the custom attributes each list declares, if known."""
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_LISTS:
        raise ListsError(field, f"must be a list of 1 to {MAX_LISTS} contact lists")
    out: list[CampaignList] = []
    for i, item in enumerate(value):
        list_id = item.get("list_id") if isinstance(item, Mapping) else None
        declared = attributes.get(list_id) if attributes is not None and _integer(list_id) else None
        entry = campaign_list(item, f"{field}.{i}", declared)
        if any(e.list_id == entry.list_id for e in out):
            raise ListsError(f"{field}.{i}.list_id", f"list {entry.list_id} is named twice")
        out.append(entry)
    return tuple(sorted(out, key=lambda e: -e.priority))


def rank_base(priority: int) -> int:
    """The first rank of a list of `priority`: every item of a higher list ranks before it."""
    return (PRIORITY_MAX - priority) << RANK_BITS


def kind_of(state: str, priority: bool) -> str | None:
    """The kind of a due item (`ready` never attempted, `scheduled` attempted before); None
    for an item not waiting to be claimed."""
    if state == "scheduled":
        return RETRIES
    if state == "ready":
        return PRIORITY if priority else REGULAR
    return None


def claim_order(items: Iterable[Mapping[str, Any]], order: Sequence[str], now: datetime) -> list[Mapping[str, Any]]:
    """The due items (dicts with state, priority, rank, next_at, id) in the order a claim under
    `order` takes them: by kind, then rank (priority and regular) or due time (retries)."""
    place = {kind: i for i, kind in enumerate(order)}

    def key(item: Mapping[str, Any]) -> tuple:
        kind = kind_of(item["state"], item.get("priority", False))
        within = (item["next_at"].timestamp(),) if kind == RETRIES else (item.get("rank", 0),)
        return (place[kind], *within, item["id"])

    return sorted((i for i in items if kind_of(i["state"], i.get("priority", False)) and i["next_at"] <= now), key=key)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

"""Pages of the list routes: one scheme everywhere. `?limit=N` items (1..MAX_PAGE, default
MAX_PAGE) by id, those after `?after=ID`; when a page is full, `Link: <url>; rel="next"`
(RFC 8288) gives the URL of the next page (the same query with `after` = the page's last id).
The body stays the list itself, so a client that reads one page sees what it always saw.
`Named` is the `?name=` filter of the routes listing named resources (names are unique there:
a page of at most one). `NewestFirst` pages a route listed newest first (the alarms) the same
way, by id descending, with `?before=ID` for its cursor."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request, Response

from .validation import Text

MAX_PAGE = 1000
Named = Annotated[Text | None, Query(min_length=1, max_length=200, description="only the one with this name")]


class Page:
    """A route's `page: Page = Depends()`: its `after` and `limit` go to the store's query;
    `link(rows)` sets the next page's Link header and returns the rows."""

    cursor = "after"

    def __init__(self, request: Request, response: Response,
                 limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="items per page")] = MAX_PAGE,
                 after: Annotated[int, Query(ge=0, le=2**63 - 1, description="items with an id above this")] = 0):
        self.request, self.response, self.limit, self.after = request, response, limit, after

    def link(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if len(rows) == self.limit:
            url = self.request.url.include_query_params(**{self.cursor: rows[-1]["id"]}, limit=self.limit)
            self.response.headers["Link"] = f'<{url}>; rel="next"'
        return rows


class NewestFirst(Page):
    """A page of a route listed by id descending: `?limit=N` items with an id below `?before=ID`
    (default: from the newest); a full page's Link gives the next with `before` = its last id
    (the other query parameters, its filters, kept)."""

    cursor = "before"

    def __init__(self, request: Request, response: Response,
                 limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="items per page")] = MAX_PAGE,
                 before: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="items with an id below this")]
                 = None):
        super().__init__(request, response, limit)
        self.before = before

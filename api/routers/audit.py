"""`GET /api/v1/audit`: the audit log of the changes made through the API (api/auth.py writes
it), for admins and supervisors; oldest first, a page at a time (`after` = the last id seen)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, Query

from pom_actors.store import auth as store

from .. import deps
from ..validation import Id, Text

router = APIRouter(tags=["audit"])


@router.get("/audit")
def audit(after: Annotated[int, Query(ge=0, le=2**63 - 1, description="entries with an id above this")] = 0,
          limit: Annotated[int, Query(ge=1, le=store.MAX_AUDIT_PAGE)] = 100,
          since: Annotated[datetime | None, Query(description="at or after this time (ISO 8601)")] = None,
          until: Annotated[datetime | None, Query(description="before this time")] = None,
          token: Annotated[Id | None, Query(description="made with this token id")] = None,
          path: Annotated[Text | None, Query(max_length=2000, description="on a path starting with this")] = None,
          method: Annotated[Text | None, Query(pattern="^(POST|PUT|PATCH|DELETE|post|put|patch|delete)$")] = None,
          conn: psycopg.Connection = Depends(deps.db)) -> dict:
    """`entries` by id; `next`: the `after` of the next page (null on the last page)."""
    entries = store.audit(conn, after=after or None, limit=limit, since=since, until=until, token_id=token,
                          path_prefix=path, method=method)
    return {"entries": entries, "next": entries[-1]["id"] if len(entries) == limit else None}

"""The Rule Editor: the contact rules (core.rules: DNC, windows, attempt limits, nuisance, channels,
last codes) created, read, replaced, enabled or disabled, and deleted. A rule with no
`campaign_id` is a system rule; a campaign's rules override the system's kind by kind
(docs/rules.md). The rule engine reads the table again within a few seconds of a change.
"""
from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, model_validator

from pom_actors.core.rules import Rule, RuleKind, params_faults
from pom_actors.store import catalog

from .. import deps
from ..pages import Page
from ..validation import CleanJson, Fault, Id

router = APIRouter(tags=["rules"])


class RuleBody(BaseModel):
    kind: RuleKind
    campaign_id: Id | None = Field(default=None, description="null: a system rule")
    enabled: bool = True
    params: Annotated[dict[str, Any], CleanJson] = Field(default={}, description="the kind's parameters (docs/rules.md)")

    @model_validator(mode="after")
    def _check_params(self) -> "RuleBody":
        """The first fault of `params`, with its path (a disabled rule may omit them)."""
        if self.enabled or self.params:
            for path, message in params_faults(self.kind, self.params)[:1]:
                raise Fault(("params", *path), message)
        return self

    def rule(self) -> Rule:
        return Rule(kind=self.kind, campaign_id=self.campaign_id, enabled=self.enabled, params=self.params)


@router.get("/rules")
def list_rules(campaign_id: Annotated[Id | None, Query(description="only this campaign's rules")] = None,
               system: Annotated[bool, Query(description="only the system rules")] = False,
               page: Page = Depends(), conn: psycopg.Connection = Depends(deps.db)) -> list[dict]:
    """A page of rules by id (api/pages.py)."""
    return page.link(catalog.rule_rows(conn, campaign_id, system, after=page.after, limit=page.limit))


@router.get("/rules/{rule_id}")
def get_rule(rule_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return catalog.rule_row(conn, rule_id)


@router.post("/rules", status_code=201)
def create_rule(body: RuleBody, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return catalog.save_rule(conn, body.rule())


@router.put("/rules/{rule_id}")
def replace_rule(rule_id: Id, body: RuleBody, conn: psycopg.Connection = Depends(deps.db)) -> dict:
    return catalog.save_rule(conn, body.rule(), rule_id)


@router.delete("/rules/{rule_id}", status_code=204)
def delete_rule(rule_id: Id, conn: psycopg.Connection = Depends(deps.db)) -> None:
    catalog.delete_rule(conn, rule_id)

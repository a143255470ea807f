"""Agents and supervisor commands, through the Agent Manager (docs/agents.md).

The Agent Manager holds the agents' live state; every route here asks it (plain `def`
routes: the blocking actor call runs in the threadpool). Its refusals come back as the API's
errors (api/errors.py): an unknown agent 404, an illegal transition or a command that cannot
be honoured (job full, skills missing, deleting an agent logged in) 409.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pom_actors.core.agents.licenses import PRIORITY_MAX, PRIORITY_MIN
from pom_actors.core.agents.state import AgentState
from pom_actors.core.strategy import MAX_AGENT_GROUPS, SKILL_NAME
from pom_actors.core.tokens import Principal, may_act_as
from pom_actors.store.catalog import NotFound

from ..agent_client import AgentManagerClient, agent_manager
from ..auth import authenticate
from ..errors import Forbidden
from ..pages import Page
from ..validation import Id, Text

router = APIRouter(tags=["agents"])
own = APIRouter(tags=["agents"])      # what an agent token may read too: its own agent

Login = Annotated[Text, StringConstraints(min_length=1, max_length=100)]
Skill = Annotated[str, StringConstraints(pattern=SKILL_NAME.pattern)]
Group = Annotated[str, StringConstraints(pattern=SKILL_NAME.pattern)]      # agent groups: named as skills
LoginPath = Annotated[str, Path(min_length=1, max_length=100)]
Name = Annotated[Text, StringConstraints(max_length=200)]
Skills = Annotated[list[Skill], Field(max_length=100)]
Groups = Annotated[list[Group], Field(max_length=MAX_AGENT_GROUPS,
                                      description="the agent groups it belongs to (a job naming groups takes "
                                                  "only agents of one of them)")]


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    login: Login
    name: Name = ""
    skills: Skills = Field(default_factory=list)
    groups: Groups = Field(default_factory=list)


class AgentChange(BaseModel):
    """Fields left out keep their value; new skills and groups take effect at the next
    rebalance (an agent no longer eligible for its job leaves it, after its call)."""
    model_config = ConfigDict(extra="forbid")
    name: Name = ""
    skills: Skills = Field(default_factory=list)
    groups: Groups = Field(default_factory=list)


class ForceLogoff(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[Text, StringConstraints(min_length=1, max_length=200)] = "supervisor"


class Move(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job_id: Id | None = Field(description="a running agent-based job; null: unpin the agent")


class JobAgents(BaseModel):
    """Run-time limits of a job's agents; fields left out keep their value, `max: null`
    lifts the maximum."""
    model_config = ConfigDict(extra="forbid")
    min: int | None = Field(None, ge=0, le=100_000)
    max: int | None = Field(None, ge=0, le=100_000)
    priority: int | None = Field(None, ge=PRIORITY_MIN, le=PRIORITY_MAX)


def _login(login: str) -> str:
    from ..validation import clean_text
    return clean_text(login)


@router.get("/agents")
def list_agents(job_id: Id | None = None, state: AgentState | None = None, skill: Skill | None = None,
                group: Group | None = None, page: Page = Depends(),
                am: AgentManagerClient = Depends(agent_manager)) -> list[dict]:
    """A page of agents by id (api/pages.py) with their state, job and pending command: of a
    job, in a state, with a skill, in a group if asked."""
    return page.link(am.call("agents", job_id, state and str(state), skill, page.after, page.limit, group=group))


@router.post("/agents", status_code=201)
def create_agent(body: AgentCreate, am: AgentManagerClient = Depends(agent_manager)) -> dict:
    """Create an agent (or replace the name, skills and groups of an existing login; a deleted
    login is created again)."""
    agent_id = am.call("add_agent", body.login, body.name, list(body.skills), list(body.groups))
    return am.call("agent", agent_id)


@router.patch("/agents/{login}")
def update_agent(login: LoginPath, body: AgentChange, am: AgentManagerClient = Depends(agent_manager)) -> dict:
    """Change an agent's name, skills or groups (those given)."""
    changes = {k: getattr(body, k) for k in ("name", "skills", "groups") if k in body.model_fields_set}
    return am.call("update_agent", _login(login), **changes)


@router.delete("/agents/{login}", status_code=204)
def delete_agent(login: LoginPath, request: Request, am: AgentManagerClient = Depends(agent_manager)) -> Response:
    """Delete a logged-out agent (409 otherwise): its login is refused from now on and the
    tokens acting as it are revoked; its transitions and attempts stay in the reports."""
    deleted = am.call("delete_agent", _login(login))
    for token_id in deleted["revoked_tokens"]:
        request.app.state.token_cache.forget(token_id)      # the other gateways follow within 5 s
    return Response(status_code=204)


@own.get("/agents/{login}")
def get_agent(login: LoginPath, am: AgentManagerClient = Depends(agent_manager),
              principal: Principal = Depends(authenticate)) -> dict:
    """An agent as it stands. An agent token reads only its own agent (403 otherwise)."""
    view = am.call("agent_by_login", _login(login))
    if not may_act_as(principal, view["id"]):
        raise Forbidden(f"this token acts as agent id {principal.agent_id} only")
    return view


@router.post("/agents/{login}/force-logoff")
def force_logoff(login: LoginPath, body: ForceLogoff | None = None,
                 am: AgentManagerClient = Depends(agent_manager)) -> dict:
    """Log the agent out now, or when its call ends (`pending: force_logoff`)."""
    reason = body.reason if body else "supervisor"
    return am.call("supervise", _login(login), "force_logoff", reason=reason)


@router.post("/agents/{login}/move")
def move_agent(login: LoginPath, body: Move, am: AgentManagerClient = Depends(agent_manager)) -> dict:
    """Move the agent to a running job (pinned there), now or after its call."""
    return am.call("supervise", _login(login), "move", job_id=body.job_id)


@router.get("/licenses")
def licenses(am: AgentManagerClient = Depends(agent_manager)) -> dict:
    """The license pools and each running job's grant."""
    return am.call("licenses")


@router.get("/jobs/{job_id}/agents")
def job_agents(job_id: Id, page: Page = Depends(), am: AgentManagerClient = Depends(agent_manager)) -> dict:
    """A running agent-based job's limits, grant and a page of its agents by id (`members`;
    `Link: rel="next"` while a page is full, api/pages.py)."""
    targets = am.call("jobs")
    job = targets.get(job_id)
    if job is None:
        raise NotFound(f"job {job_id} is not a running agent-based job")
    return {**job, "members": page.link(am.call("agents", job_id, None, None, page.after, page.limit))}


@router.put("/jobs/{job_id}/agents")
def set_job_agents(job_id: Id, body: JobAgents, am: AgentManagerClient = Depends(agent_manager)) -> dict:
    """Supervisor command: a running job's minimum, maximum of agents and priority (kept
    until the job ends; the campaign's own priority is not changed)."""
    given = body.model_fields_set
    limits = {k: v for k, v in (("min_agents", body.min), ("max_agents", body.max), ("priority", body.priority))
              if {"min_agents": "min", "max_agents": "max", "priority": "priority"}[k] in given}
    if limits.get("min_agents", 0) is None:
        limits["min_agents"] = 0
    if limits.get("priority", 5) is None:
        limits.pop("priority")
    return am.call("set_job", job_id, **limits)

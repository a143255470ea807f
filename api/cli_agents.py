"""`pom agents list|show|create|update|delete|force-logoff|move|licenses|job|limits`: the Agent
Manager's agents (with their skills and agent groups), the supervisor's commands on them (log one
off, move one to a job), the license pools, and a running agent-based job's agents and limits
(docs/agents.md), through the gateway.

Logins, skills, groups and limits are checked here (exit 2 naming the argument) before any
request; the gateway's refusals (an unknown login 404, a command the agent's state refuses, or
deleting an agent logged in, 409) exit 1."""
from __future__ import annotations

import argparse

from pom_actors.core.agents.state import AgentState
from pom_actors.core.strategy import MAX_AGENT_GROUPS, SKILL_NAME

from .cli_output import UsageError, emit
from .client import PomClient

COLUMNS = ("id", "login", "state", "skills", "groups", "job_id", "call_id", "pending", "pinned", "moving_to", "since")
LOGIN_MAX = 100
LIMIT_MAX = 100_000


def _login(text: str) -> str:
    if not 1 <= len(text) <= LOGIN_MAX or not text.isprintable():
        raise argparse.ArgumentTypeError(f"{text!r}: a login of 1 to {LOGIN_MAX} printable characters")
    return text


def _skill(text: str) -> str:
    if not SKILL_NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: a skill matches {SKILL_NAME.pattern}")
    return text


def _group(text: str) -> str:
    if not SKILL_NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: an agent group matches {SKILL_NAME.pattern}")
    return text


def _count(text: str) -> int:
    if not text.isdigit() or int(text) > LIMIT_MAX:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of agents from 0 to {LIMIT_MAX}")
    return int(text)


def _count_id(text: str) -> int:
    if not text.isdigit() or int(text) > 2**63 - 1:
        raise argparse.ArgumentTypeError(f"{text!r}: an id from 0 to {2**63 - 1}")
    return int(text)


def _job(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a job id from 1 to {2**31 - 1}")
    return int(text)


def add_parsers(sub) -> None:
    agents = sub.add_parser("agents", help="agents, supervisor commands, licenses, a job's agents and limits")
    asub = agents.add_subparsers(dest="action", required=True)
    alist = asub.add_parser("list", help="every agent with its state (all pages)")
    alist.add_argument("--job", type=_job, help="the agents attached to this job")
    alist.add_argument("--state", choices=list(AgentState))
    alist.add_argument("--skill", type=_skill, help="the agents with this skill")
    alist.add_argument("--group", type=_group, help="the agents in this agent group")
    asub.add_parser("show", help="one agent as it stands").add_argument("login", type=_login)
    create = asub.add_parser("create", help="a new agent (an existing login: its name, skills and groups replaced)")
    create.add_argument("login", type=_login)
    create.add_argument("--name", default="")
    create.add_argument("--skill", type=_skill, action="append", default=[], help="a skill (repeatable)")
    create.add_argument("--group", type=_group, action="append", default=[], help="an agent group (repeatable)")
    update = asub.add_parser("update", help="change an agent's name, skills or groups (those given)")
    update.add_argument("login", type=_login)
    update.add_argument("--name")
    skills = update.add_mutually_exclusive_group()
    skills.add_argument("--skill", type=_skill, action="append", help="its skills from now (repeatable)")
    skills.add_argument("--no-skills", action="store_true", help="no skill any more")
    groups = update.add_mutually_exclusive_group()
    groups.add_argument("--group", type=_group, action="append", help="its agent groups from now (repeatable)")
    groups.add_argument("--no-groups", action="store_true", help="in no group any more")
    asub.add_parser("delete", help="delete a logged-out agent (its history stays, its tokens are revoked)"
                    ).add_argument("login", type=_login)
    logoff = asub.add_parser("force-logoff", help="log the agent out now, or when its call ends")
    logoff.add_argument("login", type=_login)
    logoff.add_argument("--reason", default="supervisor")
    move = asub.add_parser("move", help="pin the agent to a running agent-based job (now or after its call)")
    move.add_argument("login", type=_login)
    where = move.add_mutually_exclusive_group(required=True)
    where.add_argument("--job", type=_job, help="the job")
    where.add_argument("--unpin", action="store_true", help="unpin it: the Agent Manager places it again")
    asub.add_parser("licenses", help="the license pools and each running job's grant")
    ajob = asub.add_parser("job", help="a running agent-based job's limits, grant and agents (1000 a page)")
    ajob.add_argument("job", type=_job)
    ajob.add_argument("--after", type=_count_id, default=0, help="its agents with an id above this")
    limits = asub.add_parser("limits", help="a running job's minimum and maximum of agents, and priority")
    limits.add_argument("job", type=_job)
    limits.add_argument("--min", type=_count)
    top = limits.add_mutually_exclusive_group()
    top.add_argument("--max", type=_count)
    top.add_argument("--no-max", action="store_true", help="lift the maximum")
    limits.add_argument("--priority", type=int, help="the job's priority for agents while it runs")


def run(client: PomClient, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        return emit(client.agents(args.job, args.state, args.skill, args.group), args, COLUMNS, "agents")
    if action == "delete":
        return emit(client.delete_agent(args.login), args)
    if action == "job":
        return emit(client.job_agents(args.job, args.after), args, COLUMNS, f"agents of job {args.job}",
                    rows="members")
    if action == "licenses":
        return emit(client.licenses(), args, title="licenses")
    if action == "limits":
        return emit(client.set_job_agents(args.job, **_limits(args)), args, title=f"job {args.job}: agents")
    out = {
        "show": lambda: client.agent(args.login),
        "create": lambda: client.create_agent(args.login, args.name, args.skill, _bounded(args.group)),
        "update": lambda: client.update_agent(args.login, **_changes(args)),
        "force-logoff": lambda: client.force_logoff(args.login, args.reason),
        "move": lambda: client.move_agent(args.login, None if args.unpin else args.job),
    }[action]()
    return emit(out, args, title=f"agent {args.login}")


def _bounded(groups: list[str]) -> list[str]:
    if len(set(groups)) > MAX_AGENT_GROUPS:
        raise UsageError(f"--group: at most {MAX_AGENT_GROUPS} agent groups")
    return groups


def _changes(args: argparse.Namespace) -> dict:
    """The PATCH body: what is given; UsageError for nothing."""
    out = {}
    if args.name is not None:
        out["name"] = args.name
    if args.skill is not None or args.no_skills:
        out["skills"] = args.skill or []
    if args.group is not None or args.no_groups:
        out["groups"] = _bounded(args.group or [])
    if not out:
        raise UsageError("nothing to change: give --name, --skill, --no-skills, --group or --no-groups")
    return out


def _limits(args: argparse.Namespace) -> dict:
    """The PUT body: what is given (`max: None` lifts the maximum); UsageError for nothing."""
    out = {k: v for k, v in (("min", args.min), ("max", args.max), ("priority", args.priority)) if v is not None}
    if args.no_max:
        out["max"] = None
    if not out:
        raise UsageError("nothing to change: give --min, --max, --no-max or --priority")
    return out

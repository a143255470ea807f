"""The agent desktops' WebSocket, `/api/v1/agents/ws` (the Agent SDK, docs/agent-sdk.md).

One hub per gateway process (`api/agent_hub.py`) serves every connection: it keeps one long
poll on the Agent Manager's change feed and fans the frames out. `ws_identity` is the one place
where a connection's credentials are checked.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, WebSocket

from pom_actors.core.tokens import Principal

from ..agent_hub import AgentHub, WsIdentity
from ..auth import authenticate

router = APIRouter(tags=["agent desktops"])


def ws_identity(principal: Principal = Depends(authenticate)) -> WsIdentity:
    """Who the connection acts as: the ONE place where a token is bound to an agent. The
    router's access rule (api/app.py: roles admin, supervisor, agent) has already checked the
    token (FastAPI runs `authenticate` once per connection); an agent token may then log in
    only as the agent it names (`WsIdentity.agent_login`)."""
    return WsIdentity(principal)


def agent_hub(app: FastAPI) -> AgentHub:
    """The process's hub, made at the first connection (on the Agent Manager over Ray,
    unless a test put another on `app.state.agent_hub`)."""
    hub = getattr(app.state, "agent_hub", None)
    if hub is None:
        from ..agent_client import RayAgentFeed

        hub = app.state.agent_hub = AgentHub(RayAgentFeed())
    return hub


@router.websocket("/agents/ws")
async def agent_socket(websocket: WebSocket, identity: WsIdentity = Depends(ws_identity)) -> None:
    hub = agent_hub(websocket.app)
    await websocket.accept()
    await hub.serve(websocket, identity)

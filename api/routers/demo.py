"""The demo's SMS gateway: `pom run` points POM_SMS_URL here when the demo runs (included
only when `settings.demo` is on). Messages are kept in memory on `app.state.sms_sink`.

`POST /demo/sms` stands in for an external SMS provider, which the media gateways call with
the provider's credentials (POM_SMS_TOKEN), not with an API token: it is open. Reading what
it received needs a staff token."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request

from .. import auth
from ..validation import CleanJson

router = APIRouter(tags=["demo"])


@router.post("/demo/sms", dependencies=[auth.public("the demo's stand-in SMS provider")])
def demo_sms(message: Annotated[dict[str, Any], CleanJson], request: Request) -> dict:
    sink = request.app.state.sms_sink
    sink.append(message)
    return {"status": "accepted", "id": len(sink)}


@router.get("/demo/sms", dependencies=[auth.allow(auth.STAFF)])
def demo_sms_count(request: Request) -> dict:
    sink = request.app.state.sms_sink
    return {"received": len(sink), "last": sink[-5:]}

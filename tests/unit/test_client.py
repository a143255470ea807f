"""PomClient and AsyncPomClient against a fake gateway (httpx.MockTransport): the same request
for each method on both transports, typed exceptions carrying the problem document, pages
followed by their Link header, wait_until_done and its progress, uploads with progress."""
from __future__ import annotations

import asyncio
import inspect
import json

import httpx
import pytest

from api import client as pom
from api.client import AsyncPomClient, PomClient, Routes

BASE = "http://pom.test"


class Gateway:
    """A fake gateway: jobs in pages of `page` (Link header), a job whose state follows
    `states` one reading at a time, problem documents for the error paths."""

    def __init__(self, jobs: int = 5, states: tuple[str, ...] = ("running", "running", "completed")):
        self.requests: list[httpx.Request] = []
        self.jobs = [{"id": i, "state": "completed"} for i in range(1, jobs + 1)]
        self.states = list(states)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        path, query = request.url.path, request.url.params
        if path == "/api/v1/jobs" and request.method == "GET":
            after, limit = int(query.get("after", 0)), int(query["limit"])
            rows = [j for j in self.jobs if j["id"] > after][:limit]
            headers = {}
            if len(rows) == limit:
                following = request.url.copy_merge_params({"after": rows[-1]["id"]})
                headers["Link"] = f'<{following}>; rel="next"'
            return httpx.Response(200, json=rows, headers=headers)
        if path == "/api/v1/jobs/9":
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return httpx.Response(200, json={"id": 9, "state": state, "total": 4,
                                             "work_items": {"done": 4 if state == "completed" else 1}})
        if path == "/api/v1/jobs/404":
            return httpx.Response(404, json={"type": "urn:pom:problem:not_found", "status": 404,
                                             "error": "not_found", "detail": "job 404 not found"})
        if path == "/api/v1/lists":
            return httpx.Response(422, json={"status": 422, "error": "invalid", "detail": "bad input",
                                             "errors": [{"path": "name", "message": "too long"}]})
        if path == "/api/v1/tokens/3":
            return httpx.Response(204)
        if path == "/health":
            return httpx.Response(503, json={"status": "degraded"})
        if path.endswith("/imports"):
            form = request.content
            return httpx.Response(202, json={"id": 1, "state": "queued", "bytes": len(form)})
        if path == "/api/v1/imports/1/rejects":
            return httpx.Response(200, text="line,field\n2,phone\n", headers={"content-type": "text/csv"})
        return httpx.Response(200, json={"method": request.method, "path": path, "alarms": [path], "attempt": None})


def sync_client(gw: Gateway) -> PomClient:
    return PomClient(BASE, token="pom_t", transport=httpx.MockTransport(gw))


def run_async(gw: Gateway, use):
    """`use(client)` on an AsyncPomClient over `gw`, to the end."""
    async def go():
        async with AsyncPomClient(BASE, token="pom_t", transport=httpx.MockTransport(gw)) as client:
            return await use(client)
    return asyncio.run(go())


CALLS = [("job", (9,)), ("create_job", ("c",)), ("start_job", ("c", "east", "k1")), ("pause", (2,)),
         ("resume", (2,)), ("stop", (2,)), ("start", (2, "k2")), ("update_campaign", (3,)),
         ("create_rule", ("nuisance",)), ("set_attempt_code", ("a.1", "busy")), ("zones", ()),
         ("report_attempts", ()), ("audit", ()), ("add_dnc", (4, ["+12125550101"])), ("alarms", ("active",)),
         ("set_job_agents", (2,)), ("preview_list", (1, "true")), ("move_agent", ("a1", None)),
         ("revoke_token", (3,)), ("current_attempt", (5,)), ("jobs", ("running",)), ("rules", (1,)),
         ("delete_agent", ("a1",)), ("agents", (None, None, None, "gold"))]


@pytest.mark.parametrize("name,args", CALLS, ids=[c[0] for c in CALLS])
def test_both_transports_send_the_same_request_and_give_the_same_answer(name, args):
    sync_gw, async_gw = Gateway(), Gateway()
    sync_answer = getattr(sync_client(sync_gw), name)(*args)
    async_answer = run_async(async_gw, lambda c: getattr(c, name)(*args))
    assert async_answer == sync_answer
    assert [(r.method, str(r.url), r.content, r.headers.get("idempotency-key")) for r in async_gw.requests] == \
        [(r.method, str(r.url), r.content, r.headers.get("idempotency-key")) for r in sync_gw.requests]
    assert sync_gw.requests[0].headers["authorization"] == "Bearer pom_t"


def test_every_route_method_is_a_request_description_both_transports_share():
    """No method of Routes does its own I/O: each returns what `_call`, `_collect` or `_upload`
    (or another route method) returns, so AsyncPomClient needs no copy of it."""
    for name, method in inspect.getmembers(Routes, inspect.isfunction):
        if name.startswith("_"):
            continue
        source = inspect.getsource(method)
        assert "self.http" not in source and "open(" not in source, name
        assert "return self." in source, name


def test_an_agent_update_sends_only_what_is_given():
    gw = Gateway()
    c = sync_client(gw)
    c.update_agent("ann", groups=["gold"], skills=[])
    c.update_agent("ann", name="Ann")
    c.create_agent("bob", skills=("sales",), groups=("gold",))
    assert [(r.method, r.url.path, json.loads(r.content)) for r in gw.requests] == [
        ("PATCH", "/api/v1/agents/ann", {"skills": [], "groups": ["gold"]}),
        ("PATCH", "/api/v1/agents/ann", {"name": "Ann"}),
        ("POST", "/api/v1/agents", {"login": "bob", "name": "", "skills": ["sales"], "groups": ["gold"]})]


def test_job_commands_and_start_job_take_the_action_from_the_path():
    gw = Gateway()
    c = sync_client(gw)
    c.pause(2), c.resume(2), c.stop(2), c.start(2, idempotency_key="k")
    assert [(r.method, r.url.path) for r in gw.requests] == [("POST", f"/api/v1/jobs/2/{a}")
                                                             for a in ("pause", "resume", "stop", "start")]
    assert gw.requests[-1].headers["idempotency-key"] == "k"
    c.start_job("reminders", zone="east")
    assert json.loads(gw.requests[-1].content) == {"campaign": "reminders", "start": True, "zone": "east"}


def test_errors_are_typed_and_carry_the_problem_document():
    c = sync_client(Gateway())
    with pytest.raises(pom.NotFound) as missing:
        c.job(404)
    assert missing.value.status == 404 and missing.value.error == "not_found"
    assert missing.value.detail == "job 404 not found" and str(missing.value) == "HTTP 404: job 404 not found"
    with pytest.raises(pom.Invalid) as invalid:
        c.create_list("x" * 300)
    assert invalid.value.errors == [{"path": "name", "message": "too long"}]
    with pytest.raises(pom.NotFound):
        run_async(Gateway(), lambda a: a.job(404))
    assert pom.error_for(413, {}).__class__ is pom.TooLarge and pom.error_for(418, {}).__class__ is pom.PomError
    assert c.health() == {"status": "degraded"}           # /health's 503 is an answer, not an error
    assert c.revoke_token(3) is None                       # 204


def test_pages_follow_the_link_header_on_both_transports():
    gw = Gateway(jobs=7)
    assert [j["id"] for j in sync_client(gw).pages("/api/v1/jobs", {"state": "completed"}, limit=3)] == \
        list(range(1, 8))
    assert [r.url.params["after"] for r in gw.requests[1:]] == ["3", "6"]
    assert all(r.url.params["state"] == "completed" for r in gw.requests)

    async def every(c):
        return [j["id"] async for j in c.pages("/api/v1/jobs", limit=2)]
    assert run_async(Gateway(jobs=5), every) == [1, 2, 3, 4, 5]


def test_a_page_error_is_raised_typed():
    def refuse(request):
        return httpx.Response(403, json={"error": "forbidden", "detail": "role agent may not"})
    with pytest.raises(pom.Forbidden):
        list(PomClient(BASE, token="t", transport=httpx.MockTransport(refuse)).pages("/api/v1/jobs"))


def test_wait_until_done_reports_each_reading_and_returns_the_ended_job():
    seen = []
    job = sync_client(Gateway()).wait_until_done({"id": 9}, progress=seen.append, interval=0.01)
    assert job["state"] == "completed" and [j["state"] for j in seen] == ["running", "running", "completed"]
    seen.clear()
    job = run_async(Gateway(states=("queued", "running", "stopped")),
                    lambda c: c.wait_until_done(9, progress=seen.append, interval=0.01))
    assert job["state"] == "stopped" and len(seen) == 3


def test_wait_until_done_times_out_with_the_last_reading():
    with pytest.raises(pom.WaitTimeout) as late:
        sync_client(Gateway(states=("running",))).wait_until_done(9, timeout=0.05, interval=0.01)
    assert late.value.job["state"] == "running" and "job 9 still running" in str(late.value)
    with pytest.raises(TimeoutError):
        run_async(Gateway(states=("paused",)), lambda c: c.wait_until_done(9, timeout=0.05, interval=0.01))


def test_uploads_report_progress_on_both_transports(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"phone\n" + b"+12125550101\n" * 20_000)
    size = path.stat().st_size
    reports: list[tuple[int, int]] = []
    gw = Gateway()
    answer = sync_client(gw).start_import(3, str(path), progress=lambda s, t: reports.append((s, t)), region="US")
    assert answer["state"] == "queued" and reports[-1] == (size, size) and len(reports) > 2
    assert b'name="region"\r\n\r\nUS' in gw.requests[0].content
    async_reports: list[tuple[int, int]] = []
    async_gw = Gateway()
    run_async(async_gw, lambda c: c.start_import(3, str(path), progress=lambda s, t: async_reports.append((s, t)),
                                                 region="US"))
    assert async_reports == reports and async_gw.requests[0].url.path == "/api/v1/lists/3/imports"
    assert len(async_gw.requests[0].content) == len(gw.requests[0].content)


def test_rejects_as_csv_text_on_both_transports():
    assert sync_client(Gateway()).import_rejects(1, csv=True) == "line,field\n2,phone\n"
    assert run_async(Gateway(), lambda c: c.import_rejects(1, csv=True)) == "line,field\n2,phone\n"


class Recorder(Routes):
    """Records the (method, path) each route method asks for, with sentinel arguments."""

    def __init__(self):
        self.sent: set[tuple[str, str]] = set()

    def _call(self, method, path, **kwargs):
        self.sent.add((method, path))

    def _collect(self, path, params=None):
        self.sent.add(("GET", path))

    def _upload(self, path, file, progress, **kwargs):
        self.sent.add(("POST", path))


def sentinel(parameter: inspect.Parameter):
    """An argument for a required parameter: 1 for ids, CMD for an action, {} or [] or text."""
    if parameter.name in ("command", "action"):
        return "CMD"
    annotation = str(parameter.annotation)
    return 1 if "int" in annotation else {} if "dict" in annotation else [] if "list" in annotation else "x"


def test_the_client_has_a_method_for_every_route_of_the_gateway():
    """Every operation of the OpenAPI document (but the demo's SMS sink) is asked for by some
    method of Routes, so both clients cover every endpoint."""
    import re

    from api.app import create_app
    from pom_actors.config import Settings

    recorder = Recorder()
    for name, method in inspect.getmembers(Routes, inspect.isfunction):
        if name.startswith("_") or name in ("pages", "wait_until_done"):
            continue
        required = [p for p in list(inspect.signature(method).parameters.values())[1:]
                    if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
        method(recorder, *[sentinel(p) for p in required])
    recorder.start_import(1, "x", dnc=True)
    sent = {(m, re.sub(r"/(1|x|CMD)(?=/|$)", "/{}", path)) for m, path in recorder.sent}
    spec = create_app(Settings(database_url="postgresql://unused@127.0.0.1:1/unused", demo=True)).openapi()
    routes = {(m.upper(), re.sub(r"\{[^}]+\}", "{}", path)) for path, item in spec["paths"].items()
              for m in item if not path.startswith("/demo/")}
    assert sorted(routes - sent) == [], "routes without a method in api/client.py Routes: add one"

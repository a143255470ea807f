"""Errors are RFC 9457 problem details, and the OpenAPI document declares every one.

No Ray, no database: the routes' dependencies that would need them are stubs. The OpenAPI
checks walk the app's routes, so a router added later is covered (and its routes must be in
docs/api.md)."""
from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from api import auth, deps, errors
from api.app import create_app
from pom_actors.config import Settings
from pom_actors.core.lifecycle import IllegalTransition, JobEvent, JobState

UNUSED_DB = "postgresql://unused@127.0.0.1:1/none"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
PROBLEM_KEYS = {"type", "title", "status", "detail", "error", "message"}


class Broken:
    def __getattr__(self, name):
        raise RuntimeError("a bug nobody foresaw")


def _app(**options):
    app = create_app(Settings(database_url=UNUSED_DB, demo=True, **options))
    app.dependency_overrides[deps.db] = Broken
    return app


@pytest.fixture(scope="module")
def app():
    return _app()


@pytest.fixture(scope="module")
def http(app):
    return TestClient(app, headers=auth.for_tests(app), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def spec(app) -> dict:
    return app.openapi()


def is_problem(r, status: int, error: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json", r.headers
    body = r.json()
    assert PROBLEM_KEYS <= set(body), body
    assert (body["type"], body["status"], body["error"]) == (f"urn:pom:problem:{error}", status, error)
    assert body["title"] == errors.TITLES[error] and body["detail"] == body["message"] and body["detail"]
    return body


def test_an_unknown_route_is_a_404_problem(http):
    body = is_problem(http.get("/api/v1/no-such-thing"), 404, "not_found")
    assert body["detail"] == "no route /api/v1/no-such-thing"
    is_problem(http.post("/api/v1/jobs/1/launch"), 404, "not_found")    # an unknown job command


def test_a_method_the_route_does_not_take_is_a_405_problem_with_allow(http):
    r = http.delete("/api/v1/jobs")
    is_problem(r, 405, "method_not_allowed")
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


def test_without_a_token_401_with_the_wrong_role_403(app):
    http = TestClient(app)
    is_problem(http.get("/api/v1/jobs"), 401, "unauthorized")
    headers = auth.for_tests(app, "agent", agent_id=1)
    is_problem(http.get("/api/v1/jobs", headers=headers), 403, "forbidden")


def test_bad_input_is_a_422_problem_with_the_field_at_fault(http, spec):
    r = http.post("/api/v1/campaigns", json={"name": "x\u0000", "strategy_id": 0, "list_id": 0})
    body = is_problem(r, 422, "invalid")
    assert {e["path"] for e in body["errors"]} == {"name", "strategy_id", "list_id"}
    assert body["detail"].endswith("(and 2 more)")
    jsonschema.validate(body, _resolved(spec, "ValidationProblem"))    # the 422 schema is the real body


def test_a_body_that_cannot_be_decoded_is_a_422_naming_the_body(http):
    """FastAPI answers 400 for a body it cannot decode (not UTF-8), a status no route declared
    (found by schemathesis): it is `422 invalid` at `body`, like a body that is not JSON."""
    r = http.put("/api/v1/filters/1", content=b"\xff\xfecZ\xe9([g;", headers={"content-type": "application/json"})
    body = is_problem(r, 422, "invalid")
    assert [e["path"] for e in body["errors"]] == ["body"]


def test_an_http_exception_a_dependency_raises_is_a_problem_too():
    from fastapi import HTTPException

    app = _app()

    @app.get("/api/v1/teapot", dependencies=[auth.allow(auth.STAFF)])
    def teapot() -> dict:
        raise HTTPException(422, "no tea\u0000")

    body = is_problem(TestClient(app, headers=auth.for_tests(app)).get("/api/v1/teapot"), 422, "invalid")
    assert body["errors"] == [{"path": "", "message": "no tea\\u0000"}]      # as ValidationProblem says


def test_an_unforeseen_failure_is_a_500_problem_that_says_nothing_of_it(http):
    body = is_problem(http.get("/api/v1/campaigns"), 500, "internal")
    assert "foresaw" not in body["detail"]


def test_a_director_refusal_is_a_409_problem_with_state_and_event():
    app = _app()

    class Refusing:
        def command(self, job_id, event):
            raise IllegalTransition(JobState.QUEUED, JobEvent.PAUSE)

    app.dependency_overrides[deps.director] = Refusing

    class Jobs:
        def execute(self, *args, **kwargs):
            raise AssertionError("not reached")
    app.dependency_overrides[deps.db] = Jobs
    import api.routers.jobs as jobs_router
    original = jobs_router.jobstore.job
    jobs_router.jobstore.job = lambda conn, job_id: {}
    try:
        r = TestClient(app, headers=auth.for_tests(app)).post("/api/v1/jobs/1/pause")
    finally:
        jobs_router.jobstore.job = original
    body = is_problem(r, 409, "illegal_transition")
    assert (body["state"], body["event"], body["allowed"]) == ("queued", "pause", ["start", "stop"])


# -- the OpenAPI document -------------------------------------------------------------------------
def _resolved(spec: dict, name: str) -> dict:
    return {**spec["components"]["schemas"][name], "components": spec["components"]}


def _ref(schema: dict) -> str:
    return schema["$ref"].rsplit("/", 1)[1]


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_every_operation_declares_its_problems(spec):
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    for method, path, operation in operations(spec):
        responses = operation["responses"]
        problems = {int(s) for s in responses if int(s) >= 400}
        assert 413 in problems, (method, path)
        if operation.get("parameters") or "requestBody" in operation:
            assert 422 in problems, (method, path)
            assert _ref(responses["422"]["content"]["application/problem+json"]["schema"]) == "ValidationProblem"
        if operation.get("security"):                               # a token is checked
            assert 401 in problems, (method, path)
        if "{" in path:
            assert 404 in problems, (method, path)
        if method != "GET":
            assert 409 in problems, (method, path)
        for status in problems - {422}:
            content = responses[str(status)]["content"]
            if path == "/health":
                continue
            assert _ref(content["application/problem+json"]["schema"]) == "Problem", (method, path, status)


def test_roles_actors_and_route_declarations_add_their_statuses(spec):
    def codes(method, path):
        return {int(s) for s in spec["paths"][path][method]["responses"] if int(s) >= 400}

    assert {401, 403, 404, 409, 503, 504} <= codes("post", "/api/v1/jobs/{job_id}/pause")   # director
    assert {503, 504} <= codes("get", "/api/v1/agents")                                        # agent manager
    assert 503 in codes("post", "/api/v1/lists/{list_id}/imports")                             # declare(503)
    assert 504 in codes("get", "/metrics")
    assert 403 not in codes("get", "/health") and 401 in codes("get", "/health")      # public, token optional
    assert _ref(spec["paths"]["/health"]["get"]["responses"]["503"]["content"]["application/json"]["schema"]) \
        == "Health"
    assert {503, 504}.isdisjoint(codes("get", "/api/v1/campaigns"))


def test_a_router_added_later_is_declared_without_doing_anything():
    app = _app()
    router = APIRouter()

    @router.delete("/zones/{zone_id}")
    def delete_zone(zone_id: int, director=deps.Depends(deps.director)) -> dict:
        return {}

    app.include_router(router, prefix="/api/v1", dependencies=[auth.allow(auth.STAFF)])
    responses = app.openapi()["paths"]["/api/v1/zones/{zone_id}"]["delete"]["responses"]
    assert {int(s) for s in responses if int(s) >= 400} == {401, 403, 404, 409, 413, 422, 503, 504}


# -- docs/api.md against the OpenAPI document -----------------------------------------------------
def documented() -> set[tuple[str, str]]:
    """(METHOD, path) of every `### \\`METHOD /path\\`` heading of docs/api.md; a last segment
    `a|b|c` stands for three paths, `[?query]` is dropped, parameter names do not matter."""
    found = set()
    for heading in re.findall(r"^#{2,4} (.*)$", DOCS.read_text(), re.M):
        for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s\[]*)", heading):
            head, _, last = path.rpartition("/")
            found |= {(method, re.sub(r"\{[^}]+\}", "{}", f"{head}/{alt}")) for alt in last.split("|")}
    return found


def published(spec: dict) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation; a path parameter with an `enum` is each of its values."""
    out = set()
    for method, path, operation in operations(spec):
        paths = [path]
        for p in operation.get("parameters", ()):
            values = p.get("schema", {}).get("enum")
            if p["in"] == "path" and values:
                paths = [q.replace("{" + p["name"] + "}", v) for q in paths for v in values]
        out |= {(method, re.sub(r"\{[^}]+\}", "{}", q)) for q in paths}
    return out


def test_docs_api_md_and_the_openapi_document_list_the_same_routes(spec):
    ops, docs = published(spec), documented()
    assert sorted(ops - docs) == [], "routes missing from docs/api.md (a `### \\`METHOD /path\\`` heading)"
    assert sorted(docs - ops) == [], "docs/api.md names routes the gateway does not have"


def test_docs_api_md_lists_every_problem_type():
    text = DOCS.read_text()
    missing = [code for code in errors.TITLES if f"`{code}`" not in text]
    assert missing == []

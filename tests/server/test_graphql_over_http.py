"""GraphQL over HTTP follows the spec: the `graphql-http` audit suite against a real server, and
the points clients meet most (media types, status codes, mutations over GET) checked directly."""

import json
import shutil
import subprocess
from collections import Counter

import pytest

from tests.conftest import ROOT

AUDIT_DIR = ROOT / "tests" / "peers" / "graphql-http"
GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"

# SHOULD audits (status "warn") and MAY audits ("notice") that may fail, each with the reason.
# Anything failing that is not listed here fails the test; a MUST audit ("error") always does.
ALLOWED_TO_FAIL: dict[str, str] = {}


def run_audit(url: str) -> list[dict]:
    node = shutil.which("node")
    assert node, "Node.js (node) is needed for the GraphQL-over-HTTP audit"
    assert (AUDIT_DIR / "node_modules" / "graphql-http").is_dir(), (
        "graphql-http is not installed: run `make test` (or `npm ci` in tests/peers/graphql-http)"
    )
    finished = subprocess.run(
        [node, str(AUDIT_DIR / "audit.mjs"), url],
        cwd=AUDIT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout)


def test_the_graphql_http_audit_passes(server):
    results = run_audit(f"{server.url}/graphql")
    counts = Counter(result["status"] for result in results)
    assert counts["ok"] >= 50, counts  # the whole suite ran
    errors = {r["id"]: f"{r['name']}: {r['reason']}" for r in results if r["status"] == "error"}
    assert not errors, json.dumps(errors, indent=1)
    failing = {r["id"]: f"{r['name']}: {r['reason']}" for r in results if r["status"] != "ok"}
    unexpected = {key: reason for key, reason in failing.items() if key not in ALLOWED_TO_FAIL}
    assert not unexpected, json.dumps(unexpected, indent=1)


async def post(api, body, accept: str | None = GRAPHQL_RESPONSE, **headers):
    if accept is not None:
        headers["Accept"] = accept
    return await api.http.post("/graphql", json=body, headers=headers)


async def test_graphql_response_json_is_answered_in_kind(api):
    response = await post(api, {"query": "{ me { id } }"})
    assert response.status_code == 200
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    assert response.json() == {"data": {"me": None}}
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, JSON),
        ("*/*", JSON),
        (JSON, JSON),
        ("application/*", JSON),
        (f"{GRAPHQL_RESPONSE}, {JSON};q=0.9", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE}", JSON),
        (f"{JSON};q=0.5, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"*/*, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"text/html, {GRAPHQL_RESPONSE};q=0.8", GRAPHQL_RESPONSE),
    ],
)
async def test_the_preferred_media_type_is_chosen(api, accept, expected):
    headers = {} if accept is None else {"Accept": accept}
    response = await api.http.post("/graphql", json={"query": "{ me { id } }"}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == expected


async def test_an_accept_allowing_neither_type_is_406(api):
    response = await api.http.get(
        "/graphql", params={"query": "{ me { id } }"}, headers={"Accept": "text/plain"}
    )
    assert response.status_code == 406
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_a_mutation_over_get_is_405_and_does_not_run(api, admin):
    query = 'mutation { createProject(input: {slug: "via-get", name: "Via GET"}) { id } }'
    headers = {"Accept": GRAPHQL_RESPONSE, "Authorization": f"Bearer {admin}"}
    response = await api.http.get("/graphql", params={"query": query}, headers=headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    error = response.json()["errors"][0]
    assert "mutations are not allowed" in error["message"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    # the same for application/json clients
    legacy = await api.http.get(
        "/graphql", params={"query": query}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert legacy.status_code == 405
    assert legacy.headers["content-type"] == JSON
    assert legacy.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    projects = await api.data("{ projects { slug } }")
    assert [project["slug"] for project in projects["projects"]] == ["default"]
    # the same mutation by POST runs
    await api.data(query)


async def test_queries_over_get_speak_both_media_types(api):
    for accept in (GRAPHQL_RESPONSE, JSON):
        response = await api.http.get(
            "/graphql", params={"query": "{ me { id } }"}, headers={"Accept": accept}
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == accept
        assert response.json() == {"data": {"me": None}}


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ me { id ", None, "GRAPHQL_PARSE_FAILED"),
        ("{ me { nope } }", None, "GRAPHQL_VALIDATION_FAILED"),
        ("query($f: Int) { users(first: $f) { totalCount } }", {"f": "ten"}, "BAD_USER_INPUT"),
    ],
)
async def test_request_errors_are_400_without_data_under_graphql_response_json(
    api, query, variables, code
):
    response = await post(api, {"query": query, "variables": variables})
    assert response.status_code == 400
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == code
    # application/json: 200, the errors in the body, as before
    legacy = await post(api, {"query": query, "variables": variables}, accept=JSON)
    assert legacy.status_code == 200
    assert legacy.headers["content-type"] == JSON
    assert legacy.json()["errors"][0]["extensions"]["code"] == code


async def test_field_errors_stay_200_under_both_media_types(api):
    """Execution started, so it is not a request error: 200 even when `data` is null."""
    for accept in (GRAPHQL_RESPONSE, JSON):
        response = await post(api, {"query": "{ users { totalCount } }"}, accept=accept)
        assert response.status_code == 200
        assert response.headers["content-type"] == accept
        body = response.json()
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_crashing_field_is_200_and_masked_under_graphql_response_json(api, app):
    """A field's crash is a field error (it has a path), not a request error."""
    identity = app.state.services.identity

    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    identity.login = broken
    response = await post(
        api, {"query": 'mutation { login(username: "a", password: "b") { accessToken } }'}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    error = body["errors"][0]
    assert error["message"] == "Internal server error" and error["path"] == ["login"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        ('{"query": "{ me { id } }"}', None, 415),
        ('{"query": "{ me { id } }"}', "text/plain", 415),
        ('{"query": "{ me { id } }"}', "application/json; charset=latin-1", 415),
        ('{"query": "{ me { id } }"}', "application/json; charset=utf-8", 200),
        ("{not json", JSON, 400),
        ("", JSON, 400),
        ('{"query": 1}', JSON, 400),
        ('{"variables": {}}', JSON, 400),
        ('{"query": "{ me { id } }", "variables": "x"}', JSON, 400),
        ('{"query": "{ me { id } }", "extensions": []}', JSON, 400),
        ('{"query": "{ me { id } }", "operationName": 1}', JSON, 400),
        ('{"query": "query A { me { id } }", "operationName": "B"}', JSON, 400),
        ('[{"query": "{ me { id } }"}]', JSON, 400),
    ],
)
async def test_malformed_requests_are_refused_with_a_code(api, content, content_type, status):
    headers = {"Accept": GRAPHQL_RESPONSE}
    if content_type:
        headers["Content-Type"] = content_type
    response = await api.http.post("/graphql", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    if status != 200:
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_subscriptions_are_refused_over_http(api):
    response = await post(api, {"query": 'subscription { lockEvents(project: "default") { seq } }'})
    assert response.status_code == 400
    assert "websocket" in response.json()["errors"][0]["message"]


async def test_graphiql_is_still_served_to_browsers(api):
    for accept in ("text/html", "text/html,application/xhtml+xml,*/*;q=0.8"):
        page = await api.http.get("/graphql", headers={"Accept": accept})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")

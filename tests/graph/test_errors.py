"""Every error carries extensions.code; limits refuse abusive documents; internals are masked."""

import logging

from tests.conftest import ADMIN_PASSWORD


async def test_syntax_errors_are_parse_failures(api):
    code, _ = await api.error("{ me { id ")
    assert code == "GRAPHQL_PARSE_FAILED"


async def test_unknown_fields_are_validation_failures(api):
    code, error = await api.error("{ me { nope } }")
    assert code == "GRAPHQL_VALIDATION_FAILED"
    assert "nope" in error["message"]


async def test_wrong_variable_types_are_bad_user_input(api):
    code, _ = await api.error("query($f: Int) { users(first: $f) { totalCount } }", {"f": "ten"})
    assert code == "BAD_USER_INPUT"


async def test_documents_beyond_the_limits_are_refused(settings):
    import httpx

    from server.app import create_app

    strict = settings.replace(max_query_depth=2, max_aliases=2, max_tokens=40)
    application = create_app(strict)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:

            async def code(query: str) -> str:
                body = (await http.post("/graphql", json={"query": query})).json()
                return body["errors"][0]["extensions"]["code"], body["errors"][0]["message"]

            deep, message = await code("{ users { edges { node { id } } } }")
            assert deep == "GRAPHQL_VALIDATION_FAILED" and "depth" in message
            aliased, message = await code("{ a: me { id } b: me { id } c: me { id } }")
            assert aliased == "GRAPHQL_VALIDATION_FAILED" and "aliases" in message.lower()
            long, message = await code("{ " + " ".join("me { id }" for _ in range(20)) + " }")
            assert long == "GRAPHQL_PARSE_FAILED" and "token" in message.lower()
            ok = (await http.post("/graphql", json={"query": "{ me { id } }"})).json()
            assert ok == {"data": {"me": None}}


async def test_introspection_can_be_switched_off(settings):
    import httpx

    from server.app import create_app

    query = "{ __schema { queryType { name } } }"
    for enabled, expect_error in [(True, False), (False, True)]:
        application = create_app(settings.replace(introspection=enabled))
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                body = (await http.post("/graphql", json={"query": query})).json()
        assert ("errors" in body) is expect_error, body
        if expect_error:
            assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_unexpected_errors_are_masked_and_logged_with_the_request_id(api, app, caplog):
    identity = app.state.services.identity

    async def broken(*args, **kwargs):
        raise RuntimeError("database password is hunter2")

    identity.login = broken
    caplog.set_level(logging.ERROR, logger="holdfast.graphql")
    response = await api.http.post(
        "/graphql",
        json={
            "query": f'mutation {{ login(username: "admin", password: "{ADMIN_PASSWORD}") '
            "{ accessToken } }"
        },
        headers={"X-Request-ID": "req-123"},
    )
    body = response.json()
    assert response.headers["x-request-id"] == "req-123"
    error = body["errors"][0]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-123"}
    assert "hunter2" not in response.text
    logged = "\n".join(record.getMessage() + str(record.exc_info) for record in caplog.records)
    assert "req-123" in logged and "RuntimeError" in logged
    assert ADMIN_PASSWORD not in caplog.text


async def test_a_request_id_is_made_when_none_is_sent(api):
    response = await api.http.post("/graphql", json={"query": "{ me { id } }"})
    assert len(response.headers["x-request-id"]) == 32


async def test_malformed_authorization_header_is_unauthenticated(api):
    response = await api.http.post(
        "/graphql", json={"query": "{ me { id } }"}, headers={"Authorization": "Basic abc"}
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_queries_over_get_but_no_mutations(api):
    response = await api.http.get("/graphql", params={"query": "{ me { id } }"})
    assert response.json() == {"data": {"me": None}}
    response = await api.http.get(
        "/graphql", params={"query": 'mutation { logout(refreshToken: "x") }'}
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "mutations are not allowed" in response.text.lower()


async def test_a_repeated_document_is_validated_once(api, admin):
    """Validation is cached per document; per-request limiter rules once made every request
    a miss (validation was a fifth of a mutation's time)."""
    from graph.boundary import validated as cache

    query = "{ me { id } projects { slug lastSeq } }"
    await api.post(query)
    before = cache.cache_info()
    for _ in range(3):
        assert "errors" not in await api.post(query)
    after = cache.cache_info()
    assert after.hits - before.hits == 3
    assert after.misses == before.misses


HISTORY_SINCE = 'query($s: Long) { lockHistory(project: "default", since: $s) { seq } }'


async def test_longs_must_be_whole_numbers_that_fit_64_bits(api, admin, caplog):
    """Found by fuzzing: a Long literal past 64 bits reached the database (an internal error)."""
    caplog.set_level(logging.ERROR, logger="holdfast.graphql")
    code, error = await api.error(
        'query { lockHistory(project: "default", since: 99999999999999999999999) { seq } }'
    )
    assert code == "GRAPHQL_VALIDATION_FAILED" and "64 bits" in error["message"]
    for literal in ['"12"', "1.5", "true"]:
        code, _ = await api.error(
            f'query {{ lockHistory(project: "default", since: {literal}) {{ seq }} }}'
        )
        assert code == "GRAPHQL_VALIDATION_FAILED", literal
    for value in [2**63, -(2**63) - 1, 1.5, "12", True]:
        code, _ = await api.error(HISTORY_SINCE, {"s": value})
        assert code == "BAD_USER_INPUT", value
    history = await api.data(HISTORY_SINCE, {"s": 2**63 - 1})
    assert history["lockHistory"] == []
    assert not caplog.records


async def test_ids_and_cursors_beyond_32_bits_are_bad_input(api, admin):
    import base64

    for query in [
        '{ user(id: "99999999999999999999999") { id } }',
        '{ user(id: "-5") { id } }',
        '{ job(id: "99999999999999999999") { id } }',
    ]:
        code, error = await api.error(query)
        assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", "id"), query
    huge = base64.urlsafe_b64encode(f"lock:{10**30}".encode()).decode()
    code, error = await api.error(
        '{ locks(project: "default", after: $a) { totalCount } }'.replace("$a", f'"{huge}"')
    )
    assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", "after")

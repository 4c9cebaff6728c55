"""Control characters in any string a client sends are BAD_USER_INPUT naming the argument,
never a 500, and change nothing; free text keeps its tabs and line breaks. (Each case here is a
class a schema-driven fuzzer found, or its neighbour.)"""

import pytest

from db.locks import Lock
from tests.graph.test_locks import stored
from tests.support.factories import users


@pytest.fixture
async def people(api):
    return await users(api, "mira")


@pytest.mark.parametrize(
    ("query", "variables", "field"),
    [
        ('{ project(slug: "a\\u0000b") { id } }', {}, "slug"),
        ("query($s: String!) { project(slug: $s) { id } }", {"s": "a\x00b"}, "slug"),
        (
            'mutation($p: String!) { acquireLock(project: "default", path: $p) { id } }',
            {"p": "Content/\x00.uasset"},
            "path",
        ),
        (
            'mutation($p: [String!]!) { acquireLocks(project: "default", paths: $p) { id } }',
            {"p": ["Content/Fine.uasset", "Content/Bad\x1b.uasset"]},
            "paths",
        ),
        (
            'mutation($c: String) { acquireLock(project: "default", path: "A.uasset", '
            "comment: $c) { id } }",
            {"c": "nul \x00 in a comment"},
            "comment",
        ),
        (
            "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
            {"i": {"username": "x", "email": "x\x07@example.com", "password": "long-enough-1"}},
            "email",
        ),
        ('{ lockStatus(project: "default", paths: ["ok", "bad\\u007f"]) { path } }', {}, "paths"),
        (
            'query($u: String!) { locks(project: "default", owner: $u) { totalCount } }',
            {"u": "mira\x00"},
            "owner",
        ),
    ],
)
async def test_a_control_character_is_refused_naming_the_argument(
    api, people, settings, query, variables, field
):
    code, error = await api.error(query, variables, token=people["admin"])
    assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", field)
    assert "control character" in error["message"]
    assert await stored(settings, Lock) == []


async def test_free_text_keeps_tabs_and_line_breaks(api, people):
    comment = "lighting pass:\n\t- sky\r\n\t- fog"
    data = await api.data(
        'mutation($c: String) { acquireLock(project: "default", path: "A.uasset", '
        "comment: $c) { comment } }",
        {"c": comment},
        token=people["mira"],
    )
    assert data["acquireLock"]["comment"] == comment


async def test_a_path_may_not_hold_a_tab(api, people):
    code, error = await api.error(
        'mutation { acquireLock(project: "default", path: "A\\tB.uasset") { id } }',
        token=people["mira"],
    )
    assert (code, error["extensions"]["field"]) == ("BAD_USER_INPUT", "path")


async def test_over_http_the_answer_is_a_client_error(api, people):
    response = await api.http.post(
        "/graphql",
        json={"query": '{ project(slug: "a\\u0000b") { id } }'},
        headers={
            "Authorization": f"Bearer {people['admin']}",
            "Accept": "application/graphql-response+json",
        },
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

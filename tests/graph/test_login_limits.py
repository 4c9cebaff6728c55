"""Sign-in limits at studio scale, with the default limits: a whole office behind one address
signs in freely, while guessing one account's password, or trying many accounts from one
address, is stopped — through GraphQL and through Git LFS's HTTP Basic alike."""

import asyncio
import base64

import pytest

from server.app import create_app
from tests.conftest import ADMIN_PASSWORD, USER_PASSWORD
from tests.support.graphql import GraphQL

OFFICE = ("10.20.30.40", 4000)
LOGIN = "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }"


@pytest.fixture
async def studio(settings):
    """An app with the default limits (10 failures per account, 50 per address a minute)."""
    app = create_app(
        settings.replace(login_rate_limit="10/minute", login_address_rate_limit="50/minute")
    )
    async with app.router.lifespan_context(app):
        yield app


async def code_of(client: GraphQL, username: str, password: str) -> str | None:
    body = await client.post(LOGIN, {"u": username, "p": password})
    return body["errors"][0]["extensions"]["code"] if body.get("errors") else None


async def test_fifty_people_behind_one_address_sign_in_within_a_minute(studio):
    async with GraphQL(studio, client=("127.0.0.9", 1)) as setup:
        admin = (await setup.login("admin", ADMIN_PASSWORD))["accessToken"]
        names = [f"artist{index:02}" for index in range(50)]
        for name in names:
            await setup.create_user(name, token=admin)
    async with GraphQL(studio, client=OFFICE) as office:
        # A few of them mistype first, as people do.
        typos = [await code_of(office, name, "wrong-password") for name in names[:5]]
        assert typos == ["UNAUTHENTICATED"] * 5
        codes = []
        for wave in range(0, 50, 10):  # ten at a time: arriving at work
            batch = names[wave : wave + 10]
            codes += await asyncio.gather(*(code_of(office, name, USER_PASSWORD) for name in batch))
        assert codes == [None] * 50
        # ...and they keep signing in all day: successes never use up the address.
        assert await code_of(office, names[0], USER_PASSWORD) is None


async def test_guessing_one_accounts_password_is_stopped(studio):
    async with GraphQL(studio, client=("10.1.0.1", 1)) as guesser:
        codes = await asyncio.gather(
            *(code_of(guesser, "admin", f"guess-{index}") for index in range(12))
        )
    assert sorted(codes, key=str) == ["RATE_LIMITED"] * 2 + ["UNAUTHENTICATED"] * 10
    # From anywhere, even with the right password, until the window ends.
    async with GraphQL(studio, client=("10.1.0.2", 1)) as elsewhere:
        assert await code_of(elsewhere, "admin", ADMIN_PASSWORD) == "RATE_LIMITED"


async def test_trying_many_accounts_from_one_address_is_stopped(settings):
    app = create_app(
        settings.replace(login_rate_limit="10/minute", login_address_rate_limit="5/minute")
    )
    async with app.router.lifespan_context(app):
        async with GraphQL(app, client=("10.2.0.1", 1)) as scanner:
            codes = [await code_of(scanner, f"user{index}", "password-1") for index in range(7)]
            assert codes == ["UNAUTHENTICATED"] * 5 + ["RATE_LIMITED"] * 2
            assert await code_of(scanner, "admin", ADMIN_PASSWORD) == "RATE_LIMITED"
        async with GraphQL(app, client=("10.2.0.2", 1)) as colleague:
            assert await code_of(colleague, "admin", ADMIN_PASSWORD) is None


def basic(username: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()}


async def test_git_lfs_basic_passwords_follow_the_same_limits(studio):
    async with GraphQL(studio, client=("127.0.0.9", 1)) as setup:
        admin = (await setup.login("admin", ADMIN_PASSWORD))["accessToken"]
        names = [f"dev{index:02}" for index in range(20)]
        for name in names:
            await setup.create_user(name, token=admin)
    async with GraphQL(studio, client=OFFICE) as office:
        answers = await asyncio.gather(
            *(office.http.get("/lfs/default/locks", headers=basic(n, USER_PASSWORD)) for n in names)
        )
        assert [answer.status_code for answer in answers] == [200] * 20
        guesses = await asyncio.gather(
            *(
                office.http.get("/lfs/default/locks", headers=basic("dev00", f"guess-{index}"))
                for index in range(12)
            )
        )
        assert sorted(answer.status_code for answer in guesses) == [401] * 10 + [429] * 2

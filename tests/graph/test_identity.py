"""Identity through the public GraphQL API: every mutation's happy path, wrong role, bad input
and what is left in the database."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.identity import ApiToken, RefreshToken, User
from tests.conftest import ADMIN_PASSWORD, USER_PASSWORD

ME = "{ me { id username role active email } }"
CREATE_USER = """mutation($input: CreateUserInput!) { createUser(input: $input) {
    id username role active email } }"""
REFRESH = (
    """mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }"""
)
UPDATE_USER = """mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) {
    id role active email } }"""
CREATE_TOKEN = """mutation($name: String!, $expiresAt: DateTime) {
    createApiToken(name: $name, expiresAt: $expiresAt) {
        token apiToken { id name createdAt expiresAt lastUsedAt } } }"""


async def rows(settings, model, *where):
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            return list((await session.execute(select(model).where(*where))).scalars().all())
    finally:
        await db.dispose()


async def count(settings, model) -> int:
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            return (await session.execute(select(func.count()).select_from(model))).scalar_one()
    finally:
        await db.dispose()


# -- login, refresh, logout ---------------------------------------------------------------


async def test_first_start_creates_the_admin_and_login_works(api, settings):
    session = await api.login("admin", ADMIN_PASSWORD)
    assert session["user"] == {"id": session["user"]["id"], "username": "admin", "role": "ADMIN"}
    expires = datetime.fromisoformat(session["accessTokenExpiresAt"])
    assert expires.tzinfo is not None
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(seconds=900)
    me = await api.data(ME, token=session["accessToken"])
    assert me["me"]["username"] == "admin"
    assert me["me"]["email"] == "admin@example.com"
    [stored] = await rows(settings, RefreshToken)
    assert session["refreshToken"] not in stored.token_hash
    [admin] = await rows(settings, User)
    assert admin.password_hash.startswith("$argon2id$")


async def test_me_is_null_without_credentials(api):
    assert (await api.data(ME)) == {"me": None}


async def test_login_failure_is_the_same_for_unknown_user_and_wrong_password(api):
    query = (
        "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }"
    )
    code1, wrong_password = await api.error(query, {"u": "admin", "p": "not-the-password"})
    code2, unknown_user = await api.error(query, {"u": "nobody", "p": "not-the-password"})
    assert code1 == code2 == "UNAUTHENTICATED"
    assert wrong_password["message"] == unknown_user["message"]


async def test_login_takes_the_same_time_for_unknown_user_and_wrong_password(settings):
    """With production hashing costs, an unknown user pays a hash like a wrong password does."""
    from server.app import create_app

    application = create_app(
        settings.replace(password_hash_time_cost=3, password_hash_memory_kib=65536)
    )
    query = (
        "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }"
    )
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:

            async def timed(username: str) -> float:
                started = time.perf_counter()
                await http.post(
                    "/graphql",
                    json={"query": query, "variables": {"u": username, "p": "not-the-password"}},
                )
                return time.perf_counter() - started

            await timed("admin")
            # interleaved, and the fastest of each: load from other tests only adds time
            known_times, unknown_times = [], []
            for _ in range(5):
                known_times.append(await timed("admin"))
                unknown_times.append(await timed("nobody"))
            known, unknown = min(known_times), min(unknown_times)
    assert known > 0.02, "the production hash should be measurable"
    assert 0.5 < unknown / known < 2


async def test_login_of_a_deactivated_user_fails_like_a_wrong_password(api, admin):
    user = await api.create_user("mira")
    await api.data(UPDATE_USER, {"id": user["id"], "input": {"active": False}})
    query = (
        "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }"
    )
    code, error = await api.error(query, {"u": "mira", "p": USER_PASSWORD})
    assert code == "UNAUTHENTICATED"
    assert error["message"] == "wrong username or password"


async def test_refresh_rotates_and_the_old_token_stops_working(api, settings):
    first = await api.login("admin", ADMIN_PASSWORD)
    second = (await api.data(REFRESH, {"t": first["refreshToken"]}))["refreshToken"]
    assert second["refreshToken"] != first["refreshToken"]
    assert (await api.data(ME, token=second["accessToken"]))["me"]["username"] == "admin"
    third = (await api.data(REFRESH, {"t": second["refreshToken"]}))["refreshToken"]
    assert third["refreshToken"] not in {first["refreshToken"], second["refreshToken"]}


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(api, settings):
    first = await api.login("admin", ADMIN_PASSWORD)
    other_login = await api.login("admin", ADMIN_PASSWORD)
    second = (await api.data(REFRESH, {"t": first["refreshToken"]}))["refreshToken"]
    code, error = await api.error(REFRESH, {"t": first["refreshToken"]})
    assert code == "UNAUTHENTICATED"
    assert error["extensions"]["reason"] == "reused"
    code, _ = await api.error(REFRESH, {"t": second["refreshToken"]})
    assert code == "UNAUTHENTICATED"
    # The other login is another family and keeps working.
    assert (await api.data(REFRESH, {"t": other_login["refreshToken"]}))["refreshToken"]
    tokens = await rows(settings, RefreshToken)
    assert sum(token.revoked_at is not None for token in tokens) == 2


async def test_bad_refresh_tokens_are_refused(api):
    for token in ["", "hfr_nonsense", "x" * 500]:
        code, _ = await api.error(REFRESH, {"t": token})
        assert code == "UNAUTHENTICATED"


async def test_logout_revokes_the_refresh_token(api, settings):
    session = await api.login("admin", ADMIN_PASSWORD)
    logout = "mutation($t: String!) { logout(refreshToken: $t) }"
    assert (await api.data(logout, {"t": session["refreshToken"]}))["logout"] is True
    code, _ = await api.error(REFRESH, {"t": session["refreshToken"]})
    assert code == "UNAUTHENTICATED"
    assert (await api.data(logout, {"t": session["refreshToken"]}))["logout"] is False
    [stored] = await rows(settings, RefreshToken)
    assert stored.revoked_at is not None


async def test_login_is_rate_limited_per_username_with_a_retry_after(settings):
    import httpx

    from server.app import create_app

    limited = settings.replace(login_rate_limit="3/minute")
    application = create_app(limited)
    query = (
        "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }"
    )
    async with application.router.lifespan_context(application):
        for address in ["10.0.0.1", "10.0.0.2"]:
            transport = httpx.ASGITransport(app=application, client=(address, 1000))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                for attempt in range(2 if address == "10.0.0.1" else 1):
                    body = (
                        await http.post(
                            "/graphql",
                            json={
                                "query": query,
                                "variables": {"u": "admin", "p": "wrong-password"},
                            },
                        )
                    ).json()
                    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", attempt
        transport = httpx.ASGITransport(app=application, client=("10.0.0.3", 1000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            body = (
                await http.post(
                    "/graphql",
                    json={"query": query, "variables": {"u": "admin", "p": ADMIN_PASSWORD}},
                )
            ).json()
    error = body["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 1 <= error["extensions"]["retryAfter"] <= 60
    assert body["data"] is None


async def test_login_is_rate_limited_per_client_address(settings):
    import httpx

    from server.app import create_app

    application = create_app(
        settings.replace(login_rate_limit="5/minute", login_address_rate_limit="2/minute")
    )
    query = (
        "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }"
    )
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("10.1.1.1", 1000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            codes = []
            for username in ["ann", "bob", "cid"]:
                body = (
                    await http.post(
                        "/graphql",
                        json={"query": query, "variables": {"u": username, "p": "wrong-password"}},
                    )
                ).json()
                codes.append(body["errors"][0]["extensions"]["code"])
    assert codes == ["UNAUTHENTICATED", "UNAUTHENTICATED", "RATE_LIMITED"]


# -- users: admin CRUD --------------------------------------------------------------------


async def test_admin_creates_a_user_who_can_sign_in(api, admin, settings):
    user = await api.create_user("mira")
    assert user == {"id": user["id"], "username": "mira", "role": "USER", "active": True}
    session = await api.login("mira", USER_PASSWORD)
    me = (await api.data(ME, token=session["accessToken"]))["me"]
    assert me == {
        "id": user["id"],
        "username": "mira",
        "role": "USER",
        "active": True,
        "email": "mira@example.com",
    }
    [stored] = await rows(settings, User, User.username == "mira")
    assert stored.email == "mira@example.com" and USER_PASSWORD not in stored.password_hash


async def test_create_user_needs_an_admin(api, admin, settings):
    await api.create_user("mira")
    user_token = (await api.login("mira", USER_PASSWORD))["accessToken"]
    variables = {"input": {"username": "eve", "email": "eve@example.com", "password": "password-1"}}
    assert (await api.error(CREATE_USER, variables, token=user_token))[0] == "FORBIDDEN"
    api.token = None
    assert (await api.error(CREATE_USER, variables))[0] == "UNAUTHENTICATED"
    assert await count(settings, User) == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("username", "a"),
        ("username", "has space"),
        ("username", "tab\tname"),
        ("username", "x" * 65),
        ("username", "-leading-dash"),
        ("email", "not-an-email"),
        ("email", "a@" + "b" * 260),
        ("password", "short"),
        ("password", " " * 12),
    ],
)
async def test_create_user_rejects_bad_input(api, admin, settings, field, value):
    variables = {
        "input": {
            "username": "valid.name",
            "email": "v@example.com",
            "password": "long-enough-1",
            field: value,
        }
    }
    code, error = await api.error(CREATE_USER, variables)
    assert code == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == field
    assert await count(settings, User) == 1


async def test_usernames_are_unique_ignoring_case(api, admin, settings):
    await api.create_user("Mira")
    variables = {"input": {"username": "mira", "email": "m2@example.com", "password": "password-1"}}
    code, error = await api.error(CREATE_USER, variables)
    assert code == "CONFLICT" and error["extensions"]["field"] == "username"
    assert await count(settings, User) == 2


async def test_create_user_with_an_unknown_role_is_refused(api, admin):
    variables = {
        "input": {
            "username": "x1",
            "email": "x@example.com",
            "password": "password-1",
            "role": "ROOT",
        }
    }
    code, _ = await api.error(CREATE_USER, variables)
    assert code == "BAD_USER_INPUT"


async def test_admin_updates_role_email_and_active(api, admin, settings):
    user = await api.create_user("mira")
    updated = (
        await api.data(
            UPDATE_USER,
            {"id": user["id"], "input": {"role": "ADMIN", "email": "mira@studio.example"}},
        )
    )["updateUser"]
    assert updated == {
        "id": user["id"],
        "role": "ADMIN",
        "active": True,
        "email": "mira@studio.example",
    }
    [stored] = await rows(settings, User, User.username == "mira")
    assert (stored.role, stored.email) == ("admin", "mira@studio.example")


async def test_update_user_needs_an_admin_and_valid_input(api, admin, settings):
    user = await api.create_user("mira")
    user_token = (await api.login("mira", USER_PASSWORD))["accessToken"]
    code, _ = await api.error(
        UPDATE_USER, {"id": user["id"], "input": {"role": "ADMIN"}}, token=user_token
    )
    assert code == "FORBIDDEN"
    code, _ = await api.error(UPDATE_USER, {"id": user["id"], "input": {"email": "nope"}})
    assert code == "BAD_USER_INPUT"
    code, _ = await api.error(UPDATE_USER, {"id": "99999", "input": {"active": False}})
    assert code == "NOT_FOUND"
    code, _ = await api.error(UPDATE_USER, {"id": "abc", "input": {"active": False}})
    assert code == "BAD_USER_INPUT"
    [stored] = await rows(settings, User, User.username == "mira")
    assert (stored.role, stored.email, stored.active) == ("user", "mira@example.com", True)


async def test_deactivating_a_user_stops_their_tokens_at_once(api, admin):
    user = await api.create_user("mira")
    session = await api.login("mira", USER_PASSWORD)
    api_token = await api.data(CREATE_TOKEN, {"name": "ci"}, token=session["accessToken"])
    secret = api_token["createApiToken"]["token"]
    assert (await api.data(ME, token=secret))["me"]["username"] == "mira"
    await api.data(UPDATE_USER, {"id": user["id"], "input": {"active": False}})
    for token in [session["accessToken"], secret]:
        assert (await api.error(ME, token=token))[0] == "UNAUTHENTICATED"
    assert (await api.error(REFRESH, {"t": session["refreshToken"]}))[0] == "UNAUTHENTICATED"


async def test_the_last_admin_cannot_be_demoted_deactivated_or_deleted(api, admin, settings):
    me = (await api.data(ME))["me"]
    for change in [{"role": "USER"}, {"active": False}]:
        code, _ = await api.error(UPDATE_USER, {"id": me["id"], "input": change})
        assert code == "CONFLICT"
    code, _ = await api.error("mutation($id: ID!) { deleteUser(id: $id) }", {"id": me["id"]})
    assert code == "CONFLICT"
    [stored] = await rows(settings, User)
    assert (stored.role, stored.active) == ("admin", True)
    # With a second admin, the first may step down.
    await api.create_user("second", role="ADMIN")
    demoted = await api.data(UPDATE_USER, {"id": me["id"], "input": {"role": "USER"}})
    assert demoted["updateUser"]["role"] == "USER"


async def test_concurrent_demotions_leave_one_admin(api, admin, settings):
    other = await api.create_user("second", role="ADMIN")
    other_token = (await api.login("second", USER_PASSWORD))["accessToken"]
    me = (await api.data(ME))["me"]
    results = await asyncio.gather(
        api.post(UPDATE_USER, {"id": other["id"], "input": {"role": "USER"}}),
        api.post(UPDATE_USER, {"id": me["id"], "input": {"role": "USER"}}, token=other_token),
    )
    assert sum("errors" in result for result in results) >= 1
    admins = await rows(settings, User, User.role == "admin", User.active.is_(True))
    assert len(admins) == 1


async def test_admin_deletes_a_user_and_their_tokens(api, admin, settings):
    user = await api.create_user("mira")
    session = await api.login("mira", USER_PASSWORD)
    await api.data(CREATE_TOKEN, {"name": "ci"}, token=session["accessToken"])
    mutation = "mutation($id: ID!) { deleteUser(id: $id) }"
    code, _ = await api.error(mutation, {"id": user["id"]}, token=session["accessToken"])
    assert code == "FORBIDDEN"
    assert (await api.data(mutation, {"id": user["id"]}))["deleteUser"] is True
    assert (await api.error(ME, token=session["accessToken"]))[0] == "UNAUTHENTICATED"
    assert (await api.error(mutation, {"id": user["id"]}))[0] == "NOT_FOUND"
    assert await rows(settings, User, User.username == "mira") == []
    assert await count(settings, ApiToken) == 0
    assert await count(settings, RefreshToken) == 1  # the admin's own


async def test_admin_resets_a_password_and_the_users_sessions_end(api, admin, settings):
    user = await api.create_user("mira")
    session = await api.login("mira", USER_PASSWORD)
    mutation = (
        "mutation($id: ID!, $p: String!) { resetUserPassword(id: $id, newPassword: $p) { id } }"
    )
    code, _ = await api.error(
        mutation, {"id": user["id"], "p": "new-password-2"}, token=session["accessToken"]
    )
    assert code == "FORBIDDEN"
    code, _ = await api.error(mutation, {"id": user["id"], "p": "short"})
    assert code == "BAD_USER_INPUT"
    await api.data(mutation, {"id": user["id"], "p": "new-password-2"})
    assert (await api.error(ME, token=session["accessToken"]))[0] == "UNAUTHENTICATED"
    assert (await api.error(REFRESH, {"t": session["refreshToken"]}))[0] == "UNAUTHENTICATED"
    assert (await api.login("mira", "new-password-2"))["user"]["username"] == "mira"


async def test_users_lists_every_user_in_pages_for_admins(api, admin):
    for index in range(5):
        await api.create_user(f"user{index}")
    query = """query($first: Int, $after: String) { users(first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node { username } } } }"""
    seen, after = [], None
    while True:
        page = (await api.data(query, {"first": 2, "after": after}))["users"]
        assert page["totalCount"] == 6
        seen += [edge["node"]["username"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == ["admin", "user0", "user1", "user2", "user3", "user4"]
    assert (await api.error(query, {"first": 100000}))[0] == "BAD_USER_INPUT"
    assert (await api.error(query, {"after": "garbage"}))[0] == "BAD_USER_INPUT"
    user_token = (await api.login("user0", USER_PASSWORD))["accessToken"]
    assert (await api.error(query, {}, token=user_token))[0] == "FORBIDDEN"


async def test_a_user_sees_only_their_own_email(api, admin):
    mira = await api.create_user("mira")
    await api.create_user("noor")
    token = (await api.login("noor", USER_PASSWORD))["accessToken"]
    query = "query($id: ID!) { user(id: $id) { username email } }"
    assert (await api.error(query, {"id": mira["id"]}, token=token))[0] == "FORBIDDEN"
    assert (await api.data(query, {"id": mira["id"]}))["user"]["email"] == "mira@example.com"


# -- self-service ---------------------------------------------------------------------------


async def test_change_password_needs_the_current_one_and_ends_other_sessions(api, admin):
    await api.create_user("mira")
    first = await api.login("mira", USER_PASSWORD)
    second = await api.login("mira", USER_PASSWORD)
    mutation = """mutation($c: String!, $n: String!) { changePassword(currentPassword: $c,
        newPassword: $n) { accessToken refreshToken } }"""
    code, error = await api.error(
        mutation, {"c": "wrong-password", "n": "new-password-2"}, token=first["accessToken"]
    )
    assert code == "BAD_USER_INPUT" and error["extensions"]["field"] == "currentPassword"
    code, _ = await api.error(
        mutation, {"c": USER_PASSWORD, "n": "short"}, token=first["accessToken"]
    )
    assert code == "BAD_USER_INPUT"
    api.token = None
    assert (await api.error(mutation, {"c": USER_PASSWORD, "n": "new-password-2"}))[0] == (
        "UNAUTHENTICATED"
    )
    fresh = (
        await api.data(
            mutation, {"c": USER_PASSWORD, "n": "new-password-2"}, token=first["accessToken"]
        )
    )["changePassword"]
    assert (await api.data(ME, token=fresh["accessToken"]))["me"]["username"] == "mira"
    for old in [first, second]:
        assert (await api.error(ME, token=old["accessToken"]))[0] == "UNAUTHENTICATED"
        assert (await api.error(REFRESH, {"t": old["refreshToken"]}))[0] == "UNAUTHENTICATED"
    assert (await api.login("mira", "new-password-2"))["user"]["username"] == "mira"


REGISTER = """mutation($input: RegisterInput!) { register(input: $input) {
    accessToken user { username role } } }"""


async def test_registration_is_closed_by_default(api, settings):
    variables = {
        "input": {"username": "newbie", "email": "n@example.com", "password": "password-1"}
    }
    assert (await api.error(REGISTER, variables))[0] == "FORBIDDEN"
    assert await count(settings, User) == 1


async def test_open_registration_creates_a_user_and_signs_in(settings):
    import httpx

    from server.app import create_app

    application = create_app(settings.replace(registration="open"))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            variables = {
                "input": {"username": "newbie", "email": "n@example.com", "password": "password-1"}
            }
            body = (
                await http.post("/graphql", json={"query": REGISTER, "variables": variables})
            ).json()
            assert body["data"]["register"]["user"] == {"username": "newbie", "role": "USER"}
            again = (
                await http.post("/graphql", json={"query": REGISTER, "variables": variables})
            ).json()
            assert again["errors"][0]["extensions"]["code"] == "CONFLICT"
            variables["input"]["username"] = "bad name"
            bad = (
                await http.post("/graphql", json={"query": REGISTER, "variables": variables})
            ).json()
            assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await count(settings, User) == 2


# -- API tokens -------------------------------------------------------------------------------


async def test_api_token_secret_is_shown_once_and_works_as_a_bearer(api, admin, settings):
    created = (await api.data(CREATE_TOKEN, {"name": "unreal-plugin"}))["createApiToken"]
    secret = created["token"]
    assert secret.startswith("hf_") and len(secret) > 40
    assert created["apiToken"]["name"] == "unreal-plugin"
    assert created["apiToken"]["lastUsedAt"] is None
    assert (await api.data(ME, token=secret))["me"]["username"] == "admin"
    listed = (await api.data("{ apiTokens { id name lastUsedAt } }"))["apiTokens"]
    assert [token["name"] for token in listed] == ["unreal-plugin"]
    assert listed[0]["lastUsedAt"] is not None
    [stored] = await rows(settings, ApiToken)
    assert secret not in stored.token_hash and stored.last_used_at is not None


async def test_api_token_with_an_expiry(api, admin):
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = (await api.data(CREATE_TOKEN, {"name": "ci", "expiresAt": soon}))["createApiToken"]
    assert datetime.fromisoformat(created["apiToken"]["expiresAt"]) > datetime.now(UTC)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert (await api.error(CREATE_TOKEN, {"name": "ci", "expiresAt": past}))[0] == "BAD_USER_INPUT"
    naive = datetime.now().replace(tzinfo=None).isoformat()
    assert (await api.error(CREATE_TOKEN, {"name": "ci", "expiresAt": naive}))[0] == (
        "BAD_USER_INPUT"
    )


async def test_an_expired_api_token_is_refused(api, admin, settings):
    created = (await api.data(CREATE_TOKEN, {"name": "ci"}))["createApiToken"]
    db = Database(settings.database_url)
    async with db.transaction() as session:
        token = await session.get(ApiToken, int(created["apiToken"]["id"]))
        token.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    await db.dispose()
    assert (await api.error(ME, token=created["token"]))[0] == "UNAUTHENTICATED"


async def test_create_api_token_bad_input_and_no_user(api, admin, settings):
    for name in ["", "   ", "x" * 101]:
        assert (await api.error(CREATE_TOKEN, {"name": name}))[0] == "BAD_USER_INPUT"
    api.token = None
    assert (await api.error(CREATE_TOKEN, {"name": "ci"}))[0] == "UNAUTHENTICATED"
    assert await count(settings, ApiToken) == 0


async def test_revoke_api_token_only_ones_own(api, admin, settings):
    created = (await api.data(CREATE_TOKEN, {"name": "ci"}))["createApiToken"]
    await api.create_user("mira")
    mira = (await api.login("mira", USER_PASSWORD))["accessToken"]
    revoke = "mutation($id: ID!) { revokeApiToken(id: $id) }"
    assert (await api.error(revoke, {"id": created["apiToken"]["id"]}, token=mira))[0] == (
        "NOT_FOUND"
    )
    assert (await api.data(revoke, {"id": created["apiToken"]["id"]}))["revokeApiToken"] is True
    assert (await api.error(ME, token=created["token"]))[0] == "UNAUTHENTICATED"
    assert await count(settings, ApiToken) == 0


async def test_a_deleted_users_token_never_signs_in_as_a_later_user(api, admin):
    user = await api.create_user("mira")
    token = (await api.login("mira", USER_PASSWORD))["accessToken"]
    await api.data("mutation($id: ID!) { deleteUser(id: $id) }", {"id": user["id"]})
    newcomer = await api.create_user("boss", role="ADMIN")
    assert newcomer["id"] != user["id"]
    assert (await api.error(ME, token=token))[0] == "UNAUTHENTICATED"


async def test_deactivation_outlives_reactivation_for_old_tokens(api, admin):
    user = await api.create_user("mira")
    token = (await api.login("mira", USER_PASSWORD))["accessToken"]
    for active in [False, True]:
        await api.data(UPDATE_USER, {"id": user["id"], "input": {"active": active}})
    assert (await api.error(ME, token=token))[0] == "UNAUTHENTICATED"


async def test_change_password_is_rate_limited(settings):
    from server.app import create_app

    application = create_app(settings.replace(login_rate_limit="3/minute"))
    mutation = """mutation($c: String!) { changePassword(currentPassword: $c,
        newPassword: "new-password-2") { accessToken } }"""
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("10.9.9.9", 1000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            login = await http.post(
                "/graphql",
                json={
                    "query": f"""mutation {{ login(
                username: "admin", password: "{ADMIN_PASSWORD}") {{ accessToken }} }}"""
                },
            )
            token = login.json()["data"]["login"]["accessToken"]
            codes = []
            for _ in range(4):
                body = (
                    await http.post(
                        "/graphql",
                        json={"query": mutation, "variables": {"c": "guess-password"}},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                ).json()
                codes.append(body["errors"][0]["extensions"]["code"])
    # The sign-in before them succeeded, so it does not count: three guesses, then none.
    assert codes == ["BAD_USER_INPUT"] * 3 + ["RATE_LIMITED"]


async def test_job_status_and_runs_through_graphql(api, admin, app):
    jobs = app.state.services.jobs
    await api.create_user("mira")
    mira = await api.login("mira", USER_PASSWORD)

    async def report(payload):
        return None

    jobs.handle("report", report)
    job = await jobs.enqueue("report", created_by=int(mira["user"]["id"]))
    other = await jobs.enqueue("report")
    await jobs.run_pending()
    query = "query($id: ID!) { job(id: $id) { id kind status attempts error } }"
    mine = await api.data(query, {"id": str(job.id)}, token=mira["accessToken"])
    assert mine["job"] == {
        "id": str(job.id),
        "kind": "report",
        "status": "succeeded",
        "attempts": 1,
        "error": None,
    }
    code, _ = await api.error(query, {"id": str(other.id)}, token=mira["accessToken"])
    assert code == "FORBIDDEN"
    assert (await api.error(query, {"id": "999"}))[0] == "NOT_FOUND"
    runs = "{ jobRuns(first: 10) { kind status jobId durationMs worker } }"
    listed = (await api.data(runs))["jobRuns"]
    assert {run["jobId"] for run in listed if run["kind"] == "report"} == {
        str(job.id),
        str(other.id),
    }
    assert all(run["durationMs"] >= 0 for run in listed)
    assert (await api.error(runs, token=mira["accessToken"]))[0] == "FORBIDDEN"
    assert (await api.error("{ jobRuns(first: 9999) { id } }"))[0] == "BAD_USER_INPUT"

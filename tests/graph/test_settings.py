"""Runtime settings through GraphQL: admins change them, they take effect at once, bad values
change nothing, the SMTP password never comes back, and every change is recorded."""

import json

import pytest

from tests.conftest import USER_PASSWORD

FIELDS = """lockAutoReleaseHours accessTokenTtl registration smtpHost smtpPort smtpPasswordSet
    smtpTls lockAlerts pinned stored"""
UPDATE = f"""mutation($input: RuntimeSettingsInput!) {{ updateRuntimeSettings(input: $input) {{
    {FIELDS} }} }}"""
REGISTER = """mutation { register(input: {username: "newbie", email: "n@example.com",
    password: "password-1"}) { user { username } } }"""


async def test_an_admin_opens_registration_and_it_works_at_once(api, admin):
    assert (await api.error(REGISTER, token=""))[0] == "FORBIDDEN"
    result = (await api.data(UPDATE, {"input": {"registration": "open"}}))["updateRuntimeSettings"]
    assert result["registration"] == "open" and result["stored"] == ["registration"]
    assert (await api.data(REGISTER, token=""))["register"]["user"]["username"] == "newbie"


async def test_token_lifetime_applies_to_the_next_login(api, admin):
    from datetime import UTC, datetime

    await api.data(UPDATE, {"input": {"accessTokenTtl": 120}})
    session = await api.login("admin", "admin-password-1")
    left = datetime.fromisoformat(session["accessTokenExpiresAt"]) - datetime.now(UTC)
    assert 60 < left.total_seconds() <= 120


@pytest.mark.parametrize(
    "change",
    [
        {"smtpPort": 0},
        {"smtpPort": 70000},
        {"smtpTls": "ssl3"},
        {"lockAutoReleaseHours": -1},
        {"registration": "maybe"},
        {"accessTokenTtl": 5},
        {"mailFrom": "not an address"},
        {"smtpPort": None},
    ],
)
async def test_bad_values_are_refused_and_change_nothing(api, admin, change):
    before = (await api.data(f"{{ runtimeSettings {{ {FIELDS} }} }}"))["runtimeSettings"]
    code, _error = await api.error(UPDATE, {"input": {"registration": "open", **change}})
    assert code == "BAD_USER_INPUT"
    after = (await api.data(f"{{ runtimeSettings {{ {FIELDS} }} }}"))["runtimeSettings"]
    assert after == before
    assert (await api.data("{ settingChanges { name } }"))["settingChanges"] == []


async def test_the_smtp_password_is_write_only_and_changes_are_recorded(api, admin):
    result = await api.data(
        UPDATE, {"input": {"smtpHost": "mail.example", "smtpPassword": "s3cr3t"}}
    )
    assert result["updateRuntimeSettings"]["smtpPasswordSet"] is True
    changes = (await api.data("{ settingChanges { name oldValue newValue changedBy at } }"))[
        "settingChanges"
    ]
    assert {change["name"] for change in changes} == {"smtpHost", "smtpPassword"}
    assert all(change["changedBy"] == "admin" for change in changes)
    password = next(change for change in changes if change["name"] == "smtpPassword")
    assert json.loads(password["newValue"]) == "***"
    assert "s3cr3t" not in json.dumps(changes)
    assert "s3cr3t" not in json.dumps(await api.post("{ runtimeSettings { smtpPasswordSet } }"))


async def test_only_admins_see_or_change_settings(api, admin):
    await api.create_user("mira")
    mira = (await api.login("mira", USER_PASSWORD))["accessToken"]
    assert (await api.error("{ runtimeSettings { registration } }", token=mira))[0] == "FORBIDDEN"
    code, _ = await api.error(UPDATE, {"input": {"registration": "open"}}, token=mira)
    assert code == "FORBIDDEN"
    assert (await api.error("{ runtimeSettings { registration } }", token=""))[0] == (
        "UNAUTHENTICATED"
    )


async def test_settings_pinned_by_the_environment_cannot_be_changed(settings):
    import httpx

    from server.app import create_app

    pinned = settings.replace(pinned=frozenset({"REGISTRATION"}))
    app = create_app(pinned)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            login = (
                await http.post(
                    "/graphql",
                    json={
                        "query": (
                            'mutation { login(username: "admin", password: "admin-password-1") '
                            "{ accessToken } }"
                        )
                    },
                )
            ).json()
            headers = {"Authorization": f"Bearer {login['data']['login']['accessToken']}"}
            shown = (
                await http.post(
                    "/graphql", json={"query": "{ runtimeSettings { pinned } }"}, headers=headers
                )
            ).json()
            refused = (
                await http.post(
                    "/graphql",
                    json={"query": UPDATE, "variables": {"input": {"registration": "open"}}},
                    headers=headers,
                )
            ).json()
    assert shown["data"]["runtimeSettings"]["pinned"] == ["registration"]
    error = refused["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "HOLDFAST_REGISTRATION" in error["message"]


async def test_force_release_by_anyone_is_a_cluster_setting(api, admin):
    await api.create_user("mira")
    await api.create_user("noor")
    mira = (await api.login("mira", USER_PASSWORD))["accessToken"]
    noor = (await api.login("noor", USER_PASSWORD))["accessToken"]
    await api.data(
        'mutation { acquireLock(project: "default", path: "A.uasset") { id } }', token=mira
    )
    force = 'mutation { releaseLock(project: "default", path: "A.uasset", force: true) { id } }'
    assert (await api.error(force, token=noor))[0] == "FORBIDDEN"
    await api.data(UPDATE, {"input": {"forceReleasePolicy": "everyone"}})
    assert (await api.data(force, token=noor))["releaseLock"]["id"]

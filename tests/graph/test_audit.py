"""The audit log: every data change, with its actor, before → after, client address and request
id; never a secret; admins see all, others their own acts; filters; its own retention."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import websockets
from sqlalchemy import update

from db.audit import AuditEntry
from server.app import create_app
from tests.conftest import ADMIN_PASSWORD, USER_PASSWORD, start_server, stop_server
from tests.support import factories
from tests.support.graphql import GraphQL

NODE = """id at actor { id username } action resourceType resourceId changes snapshot
    clientAddress requestId"""
AUDIT = f"""query($type: String, $id: String, $actor: String, $from: DateTime, $to: DateTime,
    $first: Int, $after: String) {{
    auditLog(resourceType: $type, resourceId: $id, actor: $actor, from: $from, to: $to,
             first: $first, after: $after) {{
        totalCount pageInfo {{ hasNextPage endCursor }}
        edges {{ cursor node {{ {NODE} }} }} }} }}"""
UPDATE_USER = """mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) {
    id } }"""
UPDATE_SETTINGS = """mutation($input: RuntimeSettingsInput!) {
    updateRuntimeSettings(input: $input) { auditRetentionDays } }"""
FORCE = """mutation($p: String!) { releaseLock(project: "default", path: $p, force: true) {
    id } }"""


async def audit_log(api: GraphQL, token: str | None = None, **filters) -> dict:
    names = {"resource_type": "type", "resource_id": "id", "since": "from", "until": "to"}
    variables = {names.get(key, key): value for key, value in filters.items()}
    return (await api.data(AUDIT, variables, token=token))["auditLog"]


async def entries(api: GraphQL, token: str | None = None, **filters) -> list[dict]:
    """Every matching entry, newest first."""
    return [edge["node"] for edge in (await audit_log(api, token, first=500, **filters))["edges"]]


async def backdate(app, resource_type: str, resource_id: str, days: int) -> None:
    async with app.state.db.transaction() as session:
        await session.execute(
            update(AuditEntry)
            .where(AuditEntry.resource_type == resource_type, AuditEntry.resource_id == resource_id)
            .values(at=datetime.now(UTC) - timedelta(days=days))
        )


async def test_users_are_audited_from_creation_to_deletion_without_a_secret(api, admin):
    mira = await api.create_user("mira")
    [created] = await entries(api, resource_type="user", resource_id=mira["id"])
    assert created["action"] == "create" and created["actor"]["username"] == "admin"
    assert created["changes"] == {
        "username": [None, "mira"],
        "email": [None, "mira@example.com"],
        "role": [None, "user"],
        "active": [None, True],
        "password": [None, "(secret)"],
    }
    assert created["snapshot"] is None

    mira_token = (await api.login("mira", USER_PASSWORD))["accessToken"]
    await api.data(
        """mutation($c: String!) { changePassword(currentPassword: $c,
            newPassword: "mira-password-2") { accessToken } }""",
        {"c": USER_PASSWORD},
        token=mira_token,
    )
    await api.data(
        """mutation($id: ID!) { resetUserPassword(id: $id, newPassword: "mira-password-3") {
            id } }""",
        {"id": mira["id"]},
    )
    await api.data(
        UPDATE_USER, {"id": mira["id"], "input": {"email": "m@example.com", "role": "USER"}}
    )
    await api.data(UPDATE_USER, {"id": mira["id"], "input": {"active": False}})
    await api.data(UPDATE_USER, {"id": mira["id"], "input": {"active": False}})
    await api.data("mutation($id: ID!) { deleteUser(id: $id) }", {"id": mira["id"]})

    found = await entries(api, resource_type="user", resource_id=mira["id"])
    assert [(entry["action"], entry["actor"]["username"]) for entry in reversed(found)] == [
        ("create", "admin"),
        ("change_password", "mira"),
        ("reset_password", "admin"),
        ("update", "admin"),
        ("update", "admin"),
        ("delete", "admin"),
    ]
    deleted, deactivated, email, reset, changed, _ = found
    assert changed["changes"] == reset["changes"] == {"password": ["(secret)", "(secret)"]}
    assert email["changes"] == {"email": ["mira@example.com", "m@example.com"]}
    assert deactivated["changes"] == {"active": [True, False]}
    assert deleted["changes"] is None
    assert deleted["snapshot"] == {
        "username": "mira",
        "email": "m@example.com",
        "role": "user",
        "active": False,
        "permissions": None,
        "password": "(secret)",
    }
    dump = json.dumps(found)
    for secret in (USER_PASSWORD, "mira-password-2", "mira-password-3", "argon2"):
        assert secret not in dump
    # A deleted actor keeps their name in the entries they made.
    [mine] = await entries(api, actor="mira")
    assert mine["action"] == "change_password"
    assert mine["actor"] == {"id": mira["id"], "username": "mira"}


async def test_the_first_admin_is_created_by_the_system(api, admin):
    admin_id = (await api.data("{ me { id } }"))["me"]["id"]
    [first] = await entries(api, resource_type="user", resource_id=admin_id)
    assert first["action"] == "create" and first["actor"] is None
    assert first["changes"]["username"] == [None, "admin"]


async def test_api_tokens_are_audited_without_the_token(api, admin):
    created = (await api.data('mutation { createApiToken(name: "ci") { token apiToken { id } } }'))[
        "createApiToken"
    ]
    token_id = created["apiToken"]["id"]
    admin_id = int((await api.data("{ me { id } }"))["me"]["id"])
    await api.data("mutation($id: ID!) { revokeApiToken(id: $id) }", {"id": token_id})
    revoked, made = await entries(api, resource_type="api_token", resource_id=token_id)
    assert made["action"] == "create"
    assert made["changes"] == {"user_id": [None, admin_id], "name": [None, "ci"]}
    assert revoked["action"] == "delete"
    assert revoked["snapshot"]["name"] == "ci" and revoked["snapshot"]["user_id"] == admin_id
    assert created["token"] not in json.dumps([revoked, made])
    assert created["token"][3:] not in json.dumps([revoked, made])


async def test_projects_are_audited_and_the_upstream_authorization_is_masked(api, admin):
    await factories.project(api, "game")
    update_project = """mutation($input: UpdateProjectInput!) {
        updateProject(slug: "game", input: $input) { slug } }"""
    await api.data(
        update_project,
        {"input": {"name": "The Game", "lfsUpstreamAuthorization": "Bearer sekrit-value"}},
    )
    await api.data(update_project, {"input": {"name": "The Game"}})
    await api.data(update_project, {"input": {"archived": True}})
    archived, renamed, created = await entries(api, resource_type="project")
    assert created["action"] == "create" and created["changes"]["slug"] == [None, "game"]
    assert "lfs_upstream_authorization" not in created["changes"]
    assert renamed["action"] == "update"
    assert renamed["changes"] == {
        "name": ["Game", "The Game"],
        "lfs_upstream_authorization": [None, "(secret)"],
    }
    assert archived["action"] == "archive"
    assert list(archived["changes"]) == ["archived_at"]
    assert archived["changes"]["archived_at"][0] is None
    assert "sekrit" not in json.dumps([archived, renamed, created])


async def test_watches_are_audited(api, admin):
    watch = """mutation { watch(project: "default", pathPrefix: "Content/Maps/") { id } }"""
    watch_id = (await api.data(watch))["watch"]["id"]
    assert await api.data('mutation { unwatch(project: "default", pathPrefix: "Content/Maps/") }')
    assert not (
        await api.data('mutation { unwatch(project: "default", pathPrefix: "Content/Maps/") }')
    )["unwatch"]
    ended, made = await entries(api, resource_type="watch")
    assert made["resourceId"] == ended["resourceId"] == watch_id
    assert made["changes"] == {"project": [None, "default"], "path_prefix": [None, "Content/Maps/"]}
    assert ended["action"] == "delete" and ended["snapshot"]["path_prefix"] == "Content/Maps/"


async def test_setting_changes_are_the_audit_log_and_secrets_stay_hidden(api, admin):
    await api.data(UPDATE_SETTINGS, {"input": {"smtpHost": "mail.example"}})
    await api.data(UPDATE_SETTINGS, {"input": {"smtpHost": "mail.example", "smtpPassword": "s3"}})
    await api.data(UPDATE_SETTINGS, {"input": {"auditRetentionDays": 30}})
    found = await entries(api, resource_type="setting")
    assert [(entry["resourceId"], entry["changes"]) for entry in found] == [
        ("audit_retention_days", {"audit_retention_days": [365, 30]}),
        ("smtp_password", {"smtp_password": [None, "(secret)"]}),
        ("smtp_host", {"smtp_host": [None, "mail.example"]}),
    ]
    assert all(entry["actor"]["username"] == "admin" for entry in found)
    legacy = (await api.data("{ settingChanges { name oldValue newValue changedBy } }"))[
        "settingChanges"
    ]
    assert legacy == [
        {"name": "auditRetentionDays", "oldValue": "365", "newValue": "30", "changedBy": "admin"},
        {"name": "smtpPassword", "oldValue": None, "newValue": '"***"', "changedBy": "admin"},
        {"name": "smtpHost", "oldValue": None, "newValue": '"mail.example"', "changedBy": "admin"},
    ]
    assert "s3" not in json.dumps(found).replace("(secret)", "")


async def test_force_release_is_audited_but_taking_and_releasing_ones_own_is_not(api, admin):
    tokens = await factories.users(api, "mira", "noor")
    for path in ("A.uasset", "B.uasset", "C.uasset"):
        assert "errors" not in await factories.lock(api, path, token=tokens["mira"])
    assert "errors" not in await factories.unlock(api, "A.uasset", token=tokens["mira"])
    # Forcing one's own lock is a plain release.
    assert "errors" not in await factories.unlock(api, "B.uasset", token=tokens["mira"], force=True)
    assert (await api.error(FORCE, {"p": "C.uasset"}, token=tokens["noor"]))[0] == "FORBIDDEN"
    assert await entries(api, resource_type="lock") == []

    forced = (await api.data(FORCE, {"p": "C.uasset"}))["releaseLock"]
    [entry] = await entries(api, resource_type="lock")
    assert entry["action"] == "force_release" and entry["resourceId"] == forced["id"]
    assert entry["actor"]["username"] == "admin"
    assert entry["snapshot"]["path"] == "C.uasset"
    assert entry["snapshot"]["owner"] == "mira"
    assert entry["changes"] is None


async def test_deactivating_a_holder_audits_the_locks_it_force_releases(api, admin):
    tokens = await factories.users(api, "mira")
    mira_id = (await api.data("{ me { id } }", token=tokens["mira"]))["me"]["id"]
    assert "errors" not in await factories.lock(api, "A.uasset", token=tokens["mira"])
    await api.data(UPDATE_USER, {"id": mira_id, "input": {"active": False}})
    [entry] = await entries(api, resource_type="lock")
    assert entry["action"] == "force_release" and entry["snapshot"]["owner"] == "mira"


async def test_an_admin_forcing_a_git_lfs_unlock_is_audited_with_the_request_id(api, admin):
    tokens = await factories.users(api, "mira")
    lfs = "application/vnd.git-lfs+json"
    mira_basic = base64.b64encode(f"mira:{USER_PASSWORD}".encode()).decode()
    admin_basic = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    headers = {"Accept": lfs, "Content-Type": lfs}
    held = await api.http.post(
        "/lfs/default/locks",
        json={"path": "Content/Hero.uasset"},
        headers={**headers, "Authorization": f"Basic {mira_basic}"},
    )
    lock_id = held.json()["lock"]["id"]
    answer = await api.http.post(
        f"/lfs/default/locks/{lock_id}/unlock",
        json={"force": True},
        headers={**headers, "Authorization": f"Basic {admin_basic}", "X-Request-ID": "lfs-42"},
    )
    assert answer.status_code == 200, answer.text
    [entry] = await entries(api, resource_type="lock")
    assert entry["resourceId"] == lock_id and entry["action"] == "force_release"
    assert entry["requestId"] == "lfs-42" and entry["clientAddress"] == "127.0.0.1"
    assert tokens


async def test_others_see_only_what_they_did_and_admins_everything(api, admin):
    tokens = await factories.users(api, "mira", "noor")
    await api.data('mutation { createApiToken(name: "mine") { token } }', token=tokens["mira"])
    await api.data(
        'mutation { watch(project: "default", pathPrefix: "") { id } }', token=tokens["noor"]
    )
    mira_sees = await audit_log(api, tokens["mira"], first=500)
    assert mira_sees["totalCount"] == 1
    assert {edge["node"]["actor"]["username"] for edge in mira_sees["edges"]} == {"mira"}
    assert (await audit_log(api, tokens["mira"], actor="noor"))["totalCount"] == 0
    assert (await audit_log(api, tokens["mira"], resource_type="user"))["totalCount"] == 0
    everything = await entries(api)
    assert {entry["actor"]["username"] for entry in everything if entry["actor"]} == {
        "admin",
        "mira",
        "noor",
    }
    assert (await api.error(AUDIT, token=""))[0] == "UNAUTHENTICATED"


async def test_filters_paging_and_bad_input(api, admin):
    for name in ("ana", "bo", "cy"):
        await api.create_user(name)
    users = await entries(api, resource_type="user")
    assert [entry["changes"]["username"][1] for entry in users] == ["cy", "bo", "ana", "admin"]
    ids = [int(entry["id"]) for entry in users]
    assert ids == sorted(ids, reverse=True)

    bo = users[1]
    assert [e["id"] for e in await entries(api, resource_id=bo["resourceId"])] == [bo["id"]]
    assert len(await entries(api, actor="ADMIN")) == 3
    assert await entries(api, actor="nobody") == []

    at = datetime.fromisoformat(bo["at"])
    since = [e["id"] for e in await entries(api, resource_type="user", since=bo["at"])]
    until = [e["id"] for e in await entries(api, resource_type="user", until=bo["at"])]
    assert since[-1] == bo["id"] and until[0] == bo["id"]
    window = await entries(api, resource_type="user", since=bo["at"], until=bo["at"])
    assert [e["id"] for e in window] == [bo["id"]]
    later = (at + timedelta(days=1)).isoformat()
    assert await entries(api, since=later) == []

    first = await audit_log(api, resource_type="user", first=2)
    assert first["totalCount"] == 4 and first["pageInfo"]["hasNextPage"] is True
    rest = await audit_log(api, resource_type="user", first=2, after=first["pageInfo"]["endCursor"])
    assert [edge["node"]["id"] for edge in first["edges"] + rest["edges"]] == [
        entry["id"] for entry in users
    ]
    assert rest["pageInfo"]["hasNextPage"] is False

    for bad in (
        {"first": -1},
        {"first": 501},
        {"after": "not-a-cursor"},
        {"after": base64.urlsafe_b64encode(b"user:3").decode().rstrip("=")},
        {"from": "2026-01-01T00:00:00"},
        {"from": "2026-02-01T00:00:00+00:00", "to": "2026-01-01T00:00:00+00:00"},
    ):
        code, error = await api.error(AUDIT, bad)
        assert code == "BAD_USER_INPUT", (bad, error)


async def test_client_address_and_request_id_without_a_trusted_proxy(app, admin):
    async with GraphQL(app, admin, client=("192.0.2.10", 4000)) as api:
        await api.post(
            UPDATE_SETTINGS,
            {"input": {"auditRetentionDays": 10}},
            headers={"X-Forwarded-For": "203.0.113.5", "X-Request-ID": "req-1"},
        )
        [entry] = await entries(api, resource_type="setting")
    assert entry["clientAddress"] == "192.0.2.10"
    assert entry["requestId"] == "req-1"


@pytest.fixture
async def proxied_app(settings):
    """The app behind proxies on 10.0.0.0/8."""
    application = create_app(settings.replace(trusted_proxies=("10.0.0.0/8",)))
    async with application.router.lifespan_context(application):
        yield application


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("10.0.0.7", "198.51.100.1, 203.0.113.9, 10.0.0.5", "203.0.113.9"),
        ("10.0.0.7", "203.0.113.9:5555", "203.0.113.9"),
        ("10.0.0.7", "10.0.0.1, 10.0.0.5", "10.0.0.1"),
        ("10.0.0.7", "not an address, 10.0.0.5", "10.0.0.5"),
        ("10.0.0.7", None, "10.0.0.7"),
        ("192.0.2.10", "203.0.113.9", "192.0.2.10"),
    ],
)
async def test_client_address_behind_trusted_proxies(proxied_app, peer, forwarded, expected):
    async with GraphQL(proxied_app, client=(peer, 4000)) as api:
        await api.sign_in("admin", ADMIN_PASSWORD)
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        body = await api.post(
            UPDATE_SETTINGS, {"input": {"auditRetentionDays": 10}}, headers=headers
        )
        assert "errors" not in body, body
        [entry] = await entries(api, resource_type="setting")
    assert entry["clientAddress"] == expected


def test_a_real_server_behind_a_proxy_records_the_forwarded_address(settings, tmp_path):
    """Real HTTP and a websocket to a uvicorn process trusting 127.0.0.1 as its proxy."""
    running = start_server(settings.replace(trusted_proxies=("127.0.0.1",)), tmp_path / "log")
    try:
        asyncio.run(_through_the_proxy(running))
    finally:
        stop_server(running)


async def _through_the_proxy(running) -> None:
    async with GraphQL(running.url) as api:
        token = await api.sign_in("admin", ADMIN_PASSWORD)
        response = await api.http.post(
            "/graphql",
            json={"query": UPDATE_SETTINGS, "variables": {"input": {"auditRetentionDays": 7}}},
            headers={
                "Authorization": f"Bearer {token}",
                "X-Forwarded-For": "198.51.100.7",
                "X-Request-ID": "http-7",
            },
        )
        assert "errors" not in response.json(), response.text
        assert response.headers["x-request-id"] == "http-7"
        async with websockets.connect(
            running.ws_url,
            subprotocols=["graphql-transport-ws"],
            additional_headers={"X-Forwarded-For": "198.51.100.8", "X-Request-ID": "ws-8"},
        ) as socket:
            init = {"Authorization": f"Bearer {token}"}
            await socket.send(json.dumps({"type": "connection_init", "payload": init}))
            assert json.loads(await socket.recv())["type"] == "connection_ack"
            mutation = {"query": UPDATE_SETTINGS, "variables": {"input": {"auditRetentionDays": 8}}}
            await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": mutation}))
            answer = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert answer["type"] == "next" and "errors" not in answer["payload"], answer
        over_ws, over_http = await entries(api, resource_type="setting")
    assert (over_http["clientAddress"], over_http["requestId"]) == ("198.51.100.7", "http-7")
    assert (over_ws["clientAddress"], over_ws["requestId"]) == ("198.51.100.8", "ws-8")
    assert over_ws["changes"] == {"audit_retention_days": [7, 8]}


@pytest.fixture
async def app_without_jobs(settings):
    """The app with no background job runner: the test runs the rounds itself."""
    application = create_app(settings.replace(run_jobs=False))
    async with application.router.lifespan_context(application):
        yield application


async def test_the_audit_log_has_its_own_retention(app_without_jobs):
    app = app_without_jobs
    async with GraphQL(app) as api:
        await api.sign_in("admin", ADMIN_PASSWORD)
        for name in ("old", "recent"):
            await api.create_user(name)
        users = {e["changes"]["username"][1]: e["resourceId"] for e in await entries(api)}
        await backdate(app, "user", users["old"], days=400)
        await backdate(app, "user", users["recent"], days=40)
        services = app.state.services
        [purge] = [job for job in services.jobs._periodic if job.name == "audit-retention"]

        # Stream events have their own retention: purging them keeps older audit entries.
        await services.locks.expire_due(retention=timedelta(hours=1))
        assert {e["resourceId"] for e in await entries(api)} >= {users["old"], users["recent"]}

        await purge.run()  # the default: 365 days
        kept = {e["resourceId"] for e in await entries(api, resource_type="user")}
        assert users["recent"] in kept and users["old"] not in kept

        await api.data(UPDATE_SETTINGS, {"input": {"auditRetentionDays": 0}})
        await backdate(app, "user", users["recent"], days=5000)
        await purge.run()
        assert users["recent"] in {
            e["resourceId"] for e in await entries(api, resource_type="user")
        }

        await api.data(UPDATE_SETTINGS, {"input": {"auditRetentionDays": 30}})
        await purge.run()
        kept = {e["resourceId"] for e in await entries(api)}
        assert users["recent"] not in kept
        assert len(await entries(api, resource_type="setting")) == 2

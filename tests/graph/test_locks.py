"""Locks through the public GraphQL API: semantics of DESIGN.md, every mutation's happy path,
wrong role, bad input and what is left in the database."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from db.engine import Database
from db.locks import Lock, LockEvent
from tests.conftest import USER_PASSWORD

LOCK_FIELDS = "id path owner { username } branch comment acquiredAt expiresAt fencingToken"
ACQUIRE = f"""mutation($project: String!, $path: String!, $comment: String, $branch: String,
    $ttl: Int) {{ acquireLock(project: $project, path: $path, comment: $comment, branch: $branch,
    ttlSeconds: $ttl) {{ {LOCK_FIELDS} project {{ slug }} }} }}"""
ACQUIRE_MANY = f"""mutation($project: String!, $paths: [String!]!) {{
    acquireLocks(project: $project, paths: $paths) {{ {LOCK_FIELDS} }} }}"""
RELEASE = """mutation($project: String!, $path: String!, $force: Boolean) {
    releaseLock(project: $project, path: $path, force: $force) { id path owner { username } } }"""
RELEASE_MANY = """mutation($project: String!, $paths: [String!]!, $force: Boolean,
    $branch: String) {
    releaseLocks(project: $project, paths: $paths, force: $force, branch: $branch) { path } }"""
HISTORY = """query($project: String!, $since: Long, $first: Int) {
    lockHistory(project: $project, since: $since, first: $first) {
        seq kind message at actor { username } lock { id path owner { username } fencingToken
        project { slug } } } }"""
STATUS = """query($project: String!, $paths: [String!]!) {
    lockStatus(project: $project, paths: $paths) { path owner { username } } }"""


async def history(api, project="default", since=None):
    return (await api.data(HISTORY, {"project": project, "since": since}))["lockHistory"]


async def stored(settings, model):
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            return list((await session.execute(select(model))).scalars().all())
    finally:
        await db.dispose()


@pytest.fixture
async def users(api, admin):
    """Tokens of two users, mira and noor, besides the admin."""
    tokens = {"admin": admin}
    for name in ["mira", "noor"]:
        await api.create_user(name)
        tokens[name] = (await api.login(name, USER_PASSWORD))["accessToken"]
    return tokens


async def acquire(api, token, path, project="default", **extra):
    return await api.post(ACQUIRE, {"project": project, "path": path, **extra}, token=token)


# -- acquire ----------------------------------------------------------------------------------


async def test_acquire_returns_the_lock_and_records_one_event(api, users, settings):
    body = await acquire(
        api,
        users["mira"],
        "Content/Maps/Arena.umap",
        comment="lighting pass",
        branch="feature/arena",
    )
    lock = body["data"]["acquireLock"]
    assert lock["path"] == "Content/Maps/Arena.umap"
    assert lock["owner"] == {"username": "mira"}
    assert (lock["branch"], lock["comment"]) == ("feature/arena", "lighting pass")
    assert lock["project"] == {"slug": "default"}
    assert lock["expiresAt"] is None and lock["fencingToken"] == 1
    [event] = await history(api)
    assert event["seq"] == 1 and event["kind"] == "ACQUIRED"
    assert event["actor"] == {"username": "mira"}
    assert event["lock"]["id"] == lock["id"]
    [row] = await stored(settings, Lock)
    assert (row.path, row.path_key) == ("Content/Maps/Arena.umap", "content/maps/arena.umap")


async def test_acquire_is_idempotent_for_the_holder(api, users):
    first = (await acquire(api, users["mira"], "Content/A.uasset"))["data"]["acquireLock"]
    again = (await acquire(api, users["mira"], "content/a.uasset"))["data"]["acquireLock"]
    assert again == first
    assert len(await history(api)) == 1


async def test_a_conflict_names_the_holder_and_changes_nothing(api, users, settings):
    held = (await acquire(api, users["mira"], "Content/A.uasset"))["data"]["acquireLock"]
    body = await acquire(api, users["noor"], "content/A.UASSET")
    error = body["errors"][0]
    assert error["extensions"]["code"] == "CONFLICT"
    assert error["extensions"]["holders"] == [
        {"path": "Content/A.uasset", "username": "mira", "acquiredAt": held["acquiredAt"]}
    ]
    assert "mira" in error["message"]
    assert len(await history(api)) == 1
    assert len(await stored(settings, Lock)) == 1


async def test_fencing_tokens_only_grow(api, users):
    tokens = []
    for _ in range(3):
        lock = (await acquire(api, users["mira"], "Content/A.uasset"))["data"]["acquireLock"]
        tokens.append(lock["fencingToken"])
        await api.data(
            RELEASE, {"project": "default", "path": "Content/A.uasset"}, token=users["mira"]
        )
    assert tokens == sorted(tokens) and len(set(tokens)) == 3


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Content\\Maps\\Arena.umap", "Content/Maps/Arena.umap"),
        ("./Content/A.uasset", "Content/A.uasset"),
        ("Content//Maps///B.umap", "Content/Maps/B.umap"),
        ("Content/./C.uasset", "Content/C.uasset"),
        ("Content/Folder/", "Content/Folder"),
    ],
)
async def test_paths_are_normalised(api, users, raw, normalized):
    lock = (await acquire(api, users["mira"], raw))["data"]["acquireLock"]
    assert lock["path"] == normalized


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "C:\\Project\\A.uasset",
        "c:/x.uasset",
        "\\\\server\\share\\A.uasset",
        "Content/../secrets",
        "..",
        "",
        "./",
        "Content/\x00A.uasset",
        "Content/\nA",
        "x" * 1025,
    ],
)
async def test_invalid_paths_are_bad_user_input(api, users, settings, path):
    body = await acquire(api, users["mira"], path)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert body["errors"][0]["extensions"]["field"] == "path"
    assert await stored(settings, Lock) == [] and await stored(settings, LockEvent) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("comment", "c" * 501), ("branch", "b" * 256), ("ttl", 0), ("ttl", -5), ("ttl", 366 * 86400)],
)
async def test_oversize_fields_are_bad_user_input(api, users, settings, field, value):
    body = await acquire(api, users["mira"], "Content/A.uasset", **{field: value})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert await stored(settings, Lock) == []


async def test_unknown_project_and_no_credentials(api, users, settings):
    body = await acquire(api, users["mira"], "A.uasset", project="nope")
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    api.token = None
    body = await api.post(ACQUIRE, {"project": "default", "path": "A.uasset"}, token="")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    code, _ = await api.error('{ locks(project: "default") { totalCount } }', token="")
    assert code == "UNAUTHENTICATED"
    assert await stored(settings, Lock) == []


async def test_case_sensitive_projects_keep_case_apart(api, users):
    await api.data(
        """mutation { createProject(input: {slug: "linux-tools", name: "Linux tools",
        caseSensitive: true}) { slug caseSensitive } }""",
        token=users["admin"],
    )
    await acquire(api, users["mira"], "src/Makefile", project="linux-tools")
    body = await acquire(api, users["noor"], "src/makefile", project="linux-tools")
    assert body["data"]["acquireLock"]["owner"] == {"username": "noor"}


async def test_acquire_locks_is_all_or_nothing_and_names_every_holder(api, users, settings):
    await acquire(api, users["mira"], "Content/A.uasset")
    await acquire(api, users["admin"], "Content/B.uasset")
    body = await api.post(
        ACQUIRE_MANY,
        {
            "project": "default",
            "paths": ["Content/C.uasset", "Content/A.uasset", "Content/B.uasset"],
        },
        token=users["noor"],
    )
    error = body["errors"][0]
    assert error["extensions"]["code"] == "CONFLICT"
    assert [(h["path"], h["username"]) for h in error["extensions"]["holders"]] == [
        ("Content/A.uasset", "mira"),
        ("Content/B.uasset", "admin"),
    ]
    assert sorted(row.path for row in await stored(settings, Lock)) == [
        "Content/A.uasset",
        "Content/B.uasset",
    ]
    assert len(await history(api)) == 2
    taken = await api.data(
        ACQUIRE_MANY,
        {
            "project": "default",
            "paths": ["Content/C.uasset", "Content/D.uasset", "content/c.uasset"],
        },
        token=users["noor"],
    )
    assert [lock["path"] for lock in taken["acquireLocks"]] == [
        "Content/C.uasset",
        "Content/D.uasset",
    ]
    assert [event["seq"] for event in await history(api)] == [1, 2, 3, 4]


async def test_fifty_users_race_for_one_path(api, admin, settings):
    tokens = []
    for index in range(50):
        await api.create_user(f"racer{index}")
    tokens = await asyncio.gather(
        *[api.login(f"racer{index}", USER_PASSWORD) for index in range(50)]
    )
    results = await asyncio.gather(
        *[acquire(api, session["accessToken"], "Content/Hero.uasset") for session in tokens]
    )
    winners = [result for result in results if result.get("data")]
    codes = [result["errors"][0]["extensions"]["code"] for result in results if "errors" in result]
    assert len(winners) == 1
    assert codes == ["CONFLICT"] * 49
    assert len(await stored(settings, Lock)) == 1
    events = await stored(settings, LockEvent)
    assert [(event.kind, event.seq) for event in events] == [("ACQUIRED", 1)]


# -- release -------------------------------------------------------------------------------


async def test_release_by_the_holder(api, users, settings):
    held = (await acquire(api, users["mira"], "Content/A.uasset"))["data"]["acquireLock"]
    released = await api.data(
        RELEASE, {"project": "default", "path": "content/a.uasset"}, token=users["mira"]
    )
    assert released["releaseLock"]["id"] == held["id"]
    assert [e["kind"] for e in await history(api)] == ["ACQUIRED", "RELEASED"]
    assert await stored(settings, Lock) == []


async def test_release_errors_change_nothing(api, users, settings):
    code, _ = await api.error(
        RELEASE, {"project": "default", "path": "Content/A.uasset"}, token=users["mira"]
    )
    assert code == "NOT_FOUND"
    await acquire(api, users["mira"], "Content/A.uasset")
    code, _ = await api.error(
        RELEASE, {"project": "default", "path": "Content/A.uasset"}, token=users["noor"]
    )
    assert code == "FORBIDDEN"
    code, _ = await api.error(
        RELEASE,
        {"project": "default", "path": "Content/A.uasset", "force": True},
        token=users["noor"],
    )
    assert code == "FORBIDDEN"
    code, _ = await api.error(RELEASE, {"project": "default", "path": "/abs"}, token=users["mira"])
    assert code == "BAD_USER_INPUT"
    assert len(await stored(settings, Lock)) == 1
    assert len(await history(api)) == 1


async def test_an_admin_force_releases_and_the_holder_is_named(api, users, settings):
    await acquire(api, users["mira"], "Content/A.uasset")
    released = await api.data(
        RELEASE,
        {"project": "default", "path": "Content/A.uasset", "force": True},
        token=users["admin"],
    )
    assert released["releaseLock"]["owner"] == {"username": "mira"}
    event = (await history(api))[-1]
    assert event["kind"] == "FORCE_RELEASED"
    assert event["actor"] == {"username": "admin"}
    assert event["lock"]["owner"] == {"username": "mira"}
    assert await stored(settings, Lock) == []


async def test_a_project_may_let_everyone_force_release(api, users):
    await api.data(
        """mutation { updateProject(slug: "default",
        input: {forceReleasePolicy: EVERYONE}) { forceReleasePolicy } }""",
        token=users["admin"],
    )
    await acquire(api, users["mira"], "Content/A.uasset")
    await api.data(
        RELEASE,
        {"project": "default", "path": "Content/A.uasset", "force": True},
        token=users["noor"],
    )
    assert (await history(api))[-1]["kind"] == "FORCE_RELEASED"


async def test_release_locks_is_all_or_nothing(api, users, settings):
    await api.data(
        ACQUIRE_MANY, {"project": "default", "paths": ["A.uasset", "B.uasset"]}, token=users["mira"]
    )
    code, error = await api.error(
        RELEASE_MANY, {"project": "default", "paths": ["A.uasset", "Z.uasset"]}, token=users["mira"]
    )
    assert code == "NOT_FOUND" and error["extensions"]["paths"] == ["Z.uasset"]
    assert len(await stored(settings, Lock)) == 2
    released = await api.data(
        RELEASE_MANY, {"project": "default", "paths": ["A.uasset", "B.uasset"]}, token=users["mira"]
    )
    assert [lock["path"] for lock in released["releaseLocks"]] == ["A.uasset", "B.uasset"]
    assert await stored(settings, Lock) == []


async def test_release_my_locks_on_a_merged_branch(api, users, settings):
    for path, user, branch in [
        ("A.uasset", "mira", "feature/x"),
        ("B.uasset", "mira", "main"),
        ("C.uasset", "noor", "feature/x"),
        ("D.uasset", "mira", "feature/x"),
    ]:
        await acquire(api, users[user], path, branch=branch)
    released = await api.data(
        RELEASE_MANY,
        {"project": "default", "paths": [], "branch": "feature/x"},
        token=users["mira"],
    )
    assert sorted(lock["path"] for lock in released["releaseLocks"]) == ["A.uasset", "D.uasset"]
    assert sorted(row.path for row in await stored(settings, Lock)) == ["B.uasset", "C.uasset"]
    code, _ = await api.error(
        RELEASE_MANY,
        {"project": "default", "paths": ["B.uasset"], "branch": "main"},
        token=users["mira"],
    )
    assert code == "BAD_USER_INPUT"


# -- renew, expiry, request ------------------------------------------------------------------


RENEW = """mutation($path: String!, $ttl: Int) { renewLock(project: "default", path: $path,
    ttlSeconds: $ttl) { expiresAt } }"""


async def test_renew_extends_the_ttl(api, users, settings):
    lock = (await acquire(api, users["mira"], "A.uasset", ttl=60))["data"]["acquireLock"]
    renewed = (await api.data(RENEW, {"path": "A.uasset", "ttl": 3600}, token=users["mira"]))[
        "renewLock"
    ]
    assert renewed["expiresAt"] > lock["expiresAt"]
    assert [e["kind"] for e in await history(api)] == ["ACQUIRED", "RENEWED"]
    code, _ = await api.error(RENEW, {"path": "A.uasset", "ttl": 60}, token=users["noor"])
    assert code == "FORBIDDEN"
    code, _ = await api.error(RENEW, {"path": "Z.uasset", "ttl": 60}, token=users["mira"])
    assert code == "NOT_FOUND"
    await acquire(api, users["mira"], "NoTtl.uasset")
    code, _ = await api.error(RENEW, {"path": "NoTtl.uasset"}, token=users["mira"])
    assert code == "BAD_USER_INPUT"
    assert len(await history(api)) == 3


async def test_project_default_ttl_applies(api, users):
    await api.data(
        """mutation { updateProject(slug: "default", input: {defaultTtlSeconds: 120})
        { defaultTtlSeconds } }""",
        token=users["admin"],
    )
    lock = (await acquire(api, users["mira"], "A.uasset"))["data"]["acquireLock"]
    assert lock["expiresAt"] is not None


async def test_expired_locks_are_released_by_the_job_and_free_the_path(api, users, app, settings):
    await acquire(api, users["mira"], "A.uasset", ttl=1)
    await acquire(api, users["mira"], "B.uasset", ttl=1)
    await asyncio.sleep(1.2)
    # An expired lock no longer blocks: taking its path releases it as EXPIRED first.
    taken = (await acquire(api, users["noor"], "A.uasset"))["data"]["acquireLock"]
    assert taken["owner"] == {"username": "noor"}
    assert await app.state.services.locks.expire_due() == 1
    kinds = [(e["kind"], e["lock"]["path"]) for e in await history(api)]
    assert kinds == [
        ("ACQUIRED", "A.uasset"),
        ("ACQUIRED", "B.uasset"),
        ("EXPIRED", "A.uasset"),
        ("ACQUIRED", "A.uasset"),
        ("EXPIRED", "B.uasset"),
    ]
    assert [row.path for row in await stored(settings, Lock)] == ["A.uasset"]


async def test_auto_release_policy_and_event_retention(api, users, app):
    await acquire(api, users["mira"], "A.uasset")
    locks = app.state.services.locks
    assert await locks.expire_due(auto_release_after=timedelta(hours=1)) == 0
    assert await locks.expire_due(auto_release_after=timedelta(0)) == 1
    assert [e["kind"] for e in await history(api)] == ["ACQUIRED", "EXPIRED"]
    await locks.expire_due(retention=timedelta(0))
    code, error = await api.error(HISTORY, {"project": "default", "since": 0}, token=users["mira"])
    assert code == "BAD_USER_INPUT" and error["extensions"]["reason"] == "refetch"
    assert await history(api, since=2) == []


REQUEST = """mutation($path: String!, $message: String) { requestLockRelease(project: "default",
    path: $path, message: $message) { seq kind message actor { username }
    lock { owner { username } } } }"""


async def test_request_release_records_an_event_for_the_holder(api, users, settings):
    await acquire(api, users["mira"], "A.uasset")
    event = (
        await api.data(
            REQUEST, {"path": "A.uasset", "message": "need it for the build"}, token=users["noor"]
        )
    )["requestLockRelease"]
    assert event["kind"] == "RELEASE_REQUESTED" and event["seq"] == 2
    assert event["actor"] == {"username": "noor"}
    assert event["lock"]["owner"] == {"username": "mira"}
    assert event["message"] == "need it for the build"
    for variables, token, code in [
        ({"path": "A.uasset"}, users["mira"], "BAD_USER_INPUT"),
        ({"path": "Z.uasset"}, users["noor"], "NOT_FOUND"),
        ({"path": "A.uasset", "message": "m" * 501}, users["noor"], "BAD_USER_INPUT"),
    ]:
        assert (await api.error(REQUEST, variables, token=token))[0] == code
    assert len(await history(api)) == 2
    assert len(await stored(settings, Lock)) == 1


# -- reading -------------------------------------------------------------------------------------


async def test_locks_filters_pages_and_counts(api, users):
    for path, user, branch in [
        ("Content/Maps/A.umap", "mira", "x"),
        ("Content/Maps/B.umap", "noor", "y"),
        ("Content/Chars/C.uasset", "mira", "x"),
        ("Config/D.ini", "mira", None),
    ]:
        await acquire(api, users[user], path, branch=branch)
    query = """query($prefix: String, $owner: String, $branch: String, $first: Int,
        $after: String) {
        locks(project: "default", pathPrefix: $prefix, owner: $owner, branch: $branch,
              first: $first, after: $after) {
            totalCount seq pageInfo { hasNextPage endCursor } edges { cursor node { path } } } }"""

    async def paths(**variables):
        result = (await api.data(query, variables, token=users["noor"]))["locks"]
        return [edge["node"]["path"] for edge in result["edges"]], result

    assert (await paths(prefix="content/maps/"))[0] == [
        "Content/Maps/A.umap",
        "Content/Maps/B.umap",
    ]
    assert (await paths(owner="mira"))[0] == [
        "Content/Maps/A.umap",
        "Content/Chars/C.uasset",
        "Config/D.ini",
    ]
    assert (await paths(branch="x"))[0] == ["Content/Maps/A.umap", "Content/Chars/C.uasset"]
    assert (await paths(owner="nobody"))[0] == []
    first, page = await paths(first=3)
    assert page["totalCount"] == 4 and page["seq"] == 4 and page["pageInfo"]["hasNextPage"]
    rest, page = await paths(first=3, after=page["pageInfo"]["endCursor"])
    assert first + rest == [
        "Content/Maps/A.umap",
        "Content/Maps/B.umap",
        "Content/Chars/C.uasset",
        "Config/D.ini",
    ]
    assert not page["pageInfo"]["hasNextPage"]


async def test_lock_status_answers_in_request_order(api, users):
    await acquire(api, users["mira"], "A.uasset")
    status = (
        await api.data(
            STATUS,
            {"project": "default", "paths": ["B.uasset", "a.UASSET", "C.uasset"]},
            token=users["noor"],
        )
    )["lockStatus"]
    assert status == [None, {"path": "A.uasset", "owner": {"username": "mira"}}, None]
    single = await api.data(
        """{ lock(project: "default", path: "A.uasset") { path }
        free: lock(project: "default", path: "B.uasset") { path } }""",
        token=users["noor"],
    )
    assert single == {"lock": {"path": "A.uasset"}, "free": None}
    code, _ = await api.error(
        STATUS, {"project": "default", "paths": ["../x"]}, token=users["noor"]
    )
    assert code == "BAD_USER_INPUT"


async def test_lock_history_pages_with_since_and_first(api, users):
    for index in range(5):
        await acquire(api, users["mira"], f"F{index}.uasset")
    seqs = [
        e["seq"]
        for e in (await api.data(HISTORY, {"project": "default", "since": 2, "first": 2}))[
            "lockHistory"
        ]
    ]
    assert seqs == [3, 4]
    code, _ = await api.error(HISTORY, {"project": "default", "first": 5000})
    assert code == "BAD_USER_INPUT"
    code, _ = await api.error(HISTORY, {"project": "default", "since": -1})
    assert code == "BAD_USER_INPUT"


# -- projects and users --------------------------------------------------------------------------


PROJECT_FIELDS = "id slug name caseSensitive archived defaultTtlSeconds forceReleasePolicy lastSeq"


async def test_projects_are_created_renamed_and_archived_by_admins(api, users):
    create = f"""mutation($input: CreateProjectInput!) {{ createProject(input: $input) {{
        {PROJECT_FIELDS} }} }}"""
    project = (
        await api.data(
            create, {"input": {"slug": "borealis", "name": "Borealis"}}, token=users["admin"]
        )
    )["createProject"]
    assert (project["caseSensitive"], project["archived"], project["lastSeq"]) == (False, False, 0)
    for variables, token, code in [
        ({"input": {"slug": "x1", "name": "X"}}, users["mira"], "FORBIDDEN"),
        ({"input": {"slug": "Bad Slug", "name": "X"}}, users["admin"], "BAD_USER_INPUT"),
        ({"input": {"slug": "ok", "name": ""}}, users["admin"], "BAD_USER_INPUT"),
        ({"input": {"slug": "borealis", "name": "Again"}}, users["admin"], "CONFLICT"),
    ]:
        assert (await api.error(create, variables, token=token))[0] == code
    update = """mutation($input: UpdateProjectInput!) { updateProject(slug: "borealis",
        input: $input) { name archived } }"""
    renamed = await api.data(update, {"input": {"name": "Project Borealis"}}, token=users["admin"])
    assert renamed["updateProject"] == {"name": "Project Borealis", "archived": False}
    assert (await api.error(update, {"input": {"name": "x"}}, token=users["mira"]))[
        0
    ] == "FORBIDDEN"
    await acquire(api, users["mira"], "A.uasset", project="borealis")
    await api.data(update, {"input": {"archived": True}}, token=users["admin"])
    body = await acquire(api, users["mira"], "B.uasset", project="borealis")
    assert body["errors"][0]["extensions"]["code"] == "CONFLICT"
    # Locks in an archived project can still be released.
    await api.data(RELEASE, {"project": "borealis", "path": "A.uasset"}, token=users["mira"])
    listed = await api.data(
        "{ projects { slug } all: projects(includeArchived: true) { slug } }", token=users["mira"]
    )
    assert listed == {
        "projects": [{"slug": "default"}],
        "all": [{"slug": "borealis"}, {"slug": "default"}],
    }
    assert (await api.data('{ project(slug: "BOREALIS") { slug } }'))["project"] == {
        "slug": "borealis"
    }
    assert (await api.data('{ project(slug: "none") { slug } }'))["project"] is None


async def test_deactivating_or_deleting_a_user_releases_their_locks(api, users, settings):
    await acquire(api, users["mira"], "A.uasset")
    await acquire(api, users["noor"], "B.uasset")
    me = (await api.data("{ users { edges { node { id username } } } }"))["users"]["edges"]
    ids = {edge["node"]["username"]: edge["node"]["id"] for edge in me}
    await api.data(
        "mutation($id: ID!) { updateUser(id: $id, input: {active: false}) { id } }",
        {"id": ids["mira"]},
    )
    await api.data("mutation($id: ID!) { deleteUser(id: $id) }", {"id": ids["noor"]})
    events = [
        (e["kind"], e["lock"]["path"], e["lock"]["owner"]["username"], e["actor"]["username"])
        for e in await history(api)
    ]
    assert events[2:] == [
        ("FORCE_RELEASED", "A.uasset", "mira", "admin"),
        ("FORCE_RELEASED", "B.uasset", "noor", "admin"),
    ]
    assert await stored(settings, Lock) == []


async def test_the_expiry_job_skips_a_round_another_replica_is_running(api, users, app, settings):
    """The job takes a cluster-wide lock; while another process holds it, this one does nothing."""
    from sqlalchemy import text

    from db.engine import create_engine

    await acquire(api, users["mira"], "A.uasset", ttl=1)
    await asyncio.sleep(1.1)
    other = create_engine(settings.database_url, pooled=False)
    async with other.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('lock-expiry'))"))
            assert await app.state.services.locks.expire_due() == 0
        await connection.rollback()
    await other.dispose()
    assert await app.state.services.locks.expire_due() == 1
    assert [e["kind"] for e in await history(api)] == ["ACQUIRED", "EXPIRED"]

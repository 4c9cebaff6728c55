"""The Git LFS locking API over HTTP: wire format, auth, errors, and one set of locks with GraphQL.

The stock `git lfs` client against a real server is in test_git_lfs.py; these check each answer
exactly, in process.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime

import httpx
import pytest

from server.app import create_app
from tests.conftest import ADMIN_PASSWORD, USER_PASSWORD

LFS = "application/vnd.git-lfs+json"
REQUEST_TYPE = f"{LFS}; charset=utf-8"
BASE = "/lfs/default"


def basic(username: str, secret: str) -> dict[str, str]:
    value = base64.b64encode(f"{username}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {value}", "Accept": LFS, "Content-Type": REQUEST_TYPE}


@pytest.fixture
async def users(api, admin):
    """alice and bob, with an API token each; the admin signs in with a password."""
    tokens = {}
    for name in ("alice", "bob"):
        await api.create_user(name)
        access = (await api.login(name, USER_PASSWORD))["accessToken"]
        data = await api.data('mutation { createApiToken(name: "git") { token } }', token=access)
        tokens[name] = data["createApiToken"]["token"]
    return {
        "alice": basic("alice", tokens["alice"]),
        "bob": basic("bob", tokens["bob"]),
        "admin": basic("admin", ADMIN_PASSWORD),
    }


async def lock(api, headers, path, ref="refs/heads/main", project="default"):
    return await api.http.post(
        f"/lfs/{project}/locks", json={"path": path, "ref": {"name": ref}}, headers=headers
    )


async def graph_lock(api, path):
    data = await api.data(
        """query($p: String!) { lock(project: "default", path: $p) {
            id path branch owner { username } } }""",
        {"p": path},
    )
    return data["lock"]


async def history(api):
    data = await api.data(
        """{ lockHistory(project: "default") { seq kind lock { id path owner { username } }
            actor { username } } }"""
    )
    return [(e["kind"], e["lock"]["path"], e["actor"]["username"]) for e in data["lockHistory"]]


async def test_a_lock_taken_over_lfs_is_the_lock_graphql_sees(api, users):
    response = await lock(api, users["alice"], "Content/Hero.uasset", ref="refs/heads/feature/x")
    assert response.status_code == 201
    assert response.headers["content-type"] == LFS
    body = response.json()["lock"]
    assert set(body) == {"id", "path", "locked_at", "owner"}
    assert isinstance(body["id"], str) and body["id"].isdigit()
    assert body["path"] == "Content/Hero.uasset"
    assert body["owner"] == {"name": "alice"}
    assert datetime.fromisoformat(body["locked_at"]).utcoffset() is not None
    seen = await graph_lock(api, "content/hero.uasset")
    assert seen == {
        "id": body["id"],
        "path": "Content/Hero.uasset",
        "branch": "feature/x",
        "owner": {"username": "alice"},
    }
    assert await history(api) == [("ACQUIRED", "Content/Hero.uasset", "alice")]


async def test_locking_again_is_idempotent_for_the_holder(api, users):
    first = (await lock(api, users["alice"], "Content/A.umap")).json()["lock"]
    again = await lock(api, users["alice"], "Content/A.umap")
    assert again.status_code == 201
    assert again.json()["lock"] == first
    assert len(await history(api)) == 1


async def test_a_conflict_is_409_naming_the_holder_with_their_lock(api, users):
    held = (await lock(api, users["alice"], "Content/A.umap")).json()["lock"]
    response = await lock(api, users["bob"], "content\\a.umap")
    assert response.status_code == 409
    body = response.json()
    assert "alice" in body["message"] and "Content/A.umap" in body["message"]
    assert body["lock"] == held
    assert await history(api) == [("ACQUIRED", "Content/A.umap", "alice")]


async def test_missing_credentials_are_401_with_a_basic_challenge(api, users):
    for method, url in [
        ("GET", f"{BASE}/locks"),
        ("POST", f"{BASE}/locks"),
        ("POST", f"{BASE}/locks/verify"),
        ("POST", f"{BASE}/locks/1/unlock"),
        ("POST", f"{BASE}/objects/batch"),
    ]:
        response = await api.http.request(method, url, headers={"Accept": LFS})
        assert response.status_code == 401, url
        assert response.headers["www-authenticate"].startswith("Basic ")
        assert response.headers["content-type"] == LFS
        assert response.json()["message"]


@pytest.mark.parametrize(
    "headers",
    [
        basic("alice", "wrong-password"),
        basic("alice", "hf_not-a-token"),
        basic("nobody", USER_PASSWORD),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Digest x"},
    ],
)
async def test_bad_credentials_are_401_and_change_nothing(api, users, headers):
    response = await lock(api, headers, "Content/A.umap")
    assert response.status_code == 401
    assert "hf_" not in response.text and "wrong-password" not in response.text
    assert await graph_lock(api, "Content/A.umap") is None


async def test_an_api_token_only_works_with_its_own_username(api, users):
    alices_token = base64.b64decode(users["alice"]["Authorization"][6:]).decode().split(":")[1]
    response = await lock(api, basic("bob", alices_token), "Content/A.umap")
    assert response.status_code == 401
    assert await graph_lock(api, "Content/A.umap") is None


async def test_passwords_and_bearer_tokens_work_too(api, users, admin):
    assert (await lock(api, basic("bob", USER_PASSWORD), "A.umap")).status_code == 201
    bearer = {"Authorization": f"Bearer {admin}", "Content-Type": REQUEST_TYPE}
    assert (await lock(api, bearer, "B.umap")).json()["lock"]["owner"] == {"name": "admin"}


async def test_basic_passwords_are_rate_limited_even_in_a_burst(settings):
    """Every failed password check counts, also when guesses arrive at once (each reserves its
    failure before the check); a verified password is remembered, so git-lfs's per-request
    credentials do not use the limit up, and a good one never counts."""
    application = create_app(settings.replace(login_rate_limit="3/minute"))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            good = basic("admin", ADMIN_PASSWORD)
            for _ in range(5):
                assert (await http.get(f"{BASE}/locks", headers=good)).status_code == 200
            guesses = [basic("admin", f"guess-{index}") for index in range(12)]
            answers = await asyncio.gather(
                *(http.get(f"{BASE}/locks", headers=headers) for headers in guesses)
            )
            assert sorted(answer.status_code for answer in answers) == [401] * 3 + [429] * 9
            limited = next(answer for answer in answers if answer.status_code == 429)
            assert int(limited.headers["retry-after"]) >= 1
            # The remembered password still works while its username is limited.
            assert (await http.get(f"{BASE}/locks", headers=good)).status_code == 200


async def test_a_remembered_basic_password_stops_working_when_it_changes(api, users):
    bob = basic("bob", USER_PASSWORD)
    assert (await api.http.get(f"{BASE}/locks", headers=bob)).status_code == 200
    data = await api.data("{ users { edges { node { id username } } } }")
    [bob_id] = [e["node"]["id"] for e in data["users"]["edges"] if e["node"]["username"] == "bob"]
    await api.data(
        'mutation($id: ID!) { resetUserPassword(id: $id, newPassword: "new-password-2") { id } }',
        {"id": bob_id},
    )
    assert (await api.http.get(f"{BASE}/locks", headers=bob)).status_code == 401
    renewed = basic("bob", "new-password-2")
    assert (await api.http.get(f"{BASE}/locks", headers=renewed)).status_code == 200


async def test_listing_filters_by_path_and_id_and_pages_with_cursors(api, users):
    ids = {}
    for index in range(5):
        path = f"Content/M{index}.umap"
        ids[path] = (await lock(api, users["alice"], path)).json()["lock"]["id"]
    get = lambda query: api.http.get(f"{BASE}/locks", params=query, headers=users["bob"])  # noqa: E731

    by_path = (await get({"path": "content/m3.umap"})).json()
    assert [entry["id"] for entry in by_path["locks"]] == [ids["Content/M3.umap"]]
    by_id = (await get({"id": ids["Content/M1.umap"]})).json()
    assert [entry["path"] for entry in by_id["locks"]] == ["Content/M1.umap"]
    assert (await get({"path": "Content/None.umap"})).json()["locks"] == []
    assert (await get({"id": "999999"})).json()["locks"] == []
    assert (await get({"id": "abc"})).json()["locks"] == []
    both = await get({"path": "Content/M1.umap", "id": ids["Content/M2.umap"]})
    assert both.json()["locks"] == []

    seen, cursor = [], ""
    for _ in range(5):
        page = (await get({"limit": 2, "cursor": cursor, "refspec": "refs/heads/main"})).json()
        seen += [entry["path"] for entry in page["locks"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"Content/M{index}.umap" for index in range(5)]


@pytest.mark.parametrize(
    ("query", "status"),
    [({"limit": "0"}, 422), ({"limit": "x"}, 422), ({"limit": "501"}, 422), ({"cursor": "x"}, 422)],
)
async def test_bad_list_parameters_are_refused(api, users, query, status):
    response = await api.http.get(f"{BASE}/locks", params=query, headers=users["bob"])
    assert response.status_code == status
    assert response.json()["message"]


async def test_verify_splits_ours_from_theirs(api, users):
    await lock(api, users["alice"], "Content/A.umap")
    await lock(api, users["bob"], "Content/B.umap")
    await lock(api, users["alice"], "Content/C.umap")
    response = await api.http.post(
        f"{BASE}/locks/verify", json={"ref": {"name": "refs/heads/main"}}, headers=users["alice"]
    )
    assert response.status_code == 200
    body = response.json()
    assert [entry["path"] for entry in body["ours"]] == ["Content/A.umap", "Content/C.umap"]
    assert [entry["path"] for entry in body["theirs"]] == ["Content/B.umap"]
    assert body["theirs"][0]["owner"] == {"name": "bob"}

    first = await api.http.post(f"{BASE}/locks/verify", json={"limit": 2}, headers=users["bob"])
    rest = await api.http.post(
        f"{BASE}/locks/verify",
        json={"limit": 2, "cursor": first.json()["next_cursor"]},
        headers=users["bob"],
    )
    assert len(first.json()["ours"] + first.json()["theirs"]) == 2
    assert [entry["path"] for entry in rest.json()["theirs"]] == ["Content/C.umap"]
    assert rest.json()["next_cursor"] == ""


async def test_unlock_by_id_releases_only_that_lock(api, users):
    held = (await lock(api, users["alice"], "Content/A.umap")).json()["lock"]
    refused = await api.http.post(
        f"{BASE}/locks/{held['id']}/unlock", json={}, headers=users["bob"]
    )
    assert refused.status_code == 403
    assert "force" in refused.json()["message"]
    not_forced = await api.http.post(
        f"{BASE}/locks/{held['id']}/unlock", json={"force": True}, headers=users["bob"]
    )
    assert not_forced.status_code == 403
    assert await graph_lock(api, "Content/A.umap") is not None

    released = await api.http.post(
        f"{BASE}/locks/{held['id']}/unlock", json={"force": False}, headers=users["alice"]
    )
    assert released.status_code == 200
    assert released.json()["lock"] == held
    again = await api.http.post(
        f"{BASE}/locks/{held['id']}/unlock", json={}, headers=users["alice"]
    )
    assert again.status_code == 404

    # A new lock on the same path has a new id: the old id never releases it.
    newer = (await lock(api, users["bob"], "Content/A.umap")).json()["lock"]
    assert newer["id"] != held["id"]
    stale = await api.http.post(
        f"{BASE}/locks/{held['id']}/unlock", json={"force": True}, headers=users["admin"]
    )
    assert stale.status_code == 404
    assert (await graph_lock(api, "Content/A.umap"))["owner"] == {"username": "bob"}


async def test_an_admin_force_unlocks_and_the_event_says_so(api, users):
    held = (await lock(api, users["bob"], "Content/B.umap")).json()["lock"]
    response = await api.http.post(
        f"{BASE}/locks/{held['id']}/unlock", json={"force": True}, headers=users["admin"]
    )
    assert response.status_code == 200
    assert response.json()["lock"]["owner"] == {"name": "bob"}
    assert await graph_lock(api, "Content/B.umap") is None
    assert (await history(api))[-1] == ("FORCE_RELEASED", "Content/B.umap", "admin")


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"path": "../outside.umap"}, 422, ".."),
        ({"path": "/abs.umap"}, 422, "relative"),
        ({"path": ""}, 422, "empty"),
        ({}, 422, "path"),
        ({"path": 7}, 422, "path"),
        ({"path": "x" * 2000}, 422, "longer"),
    ],
)
async def test_bad_lock_requests_are_refused_and_change_nothing(api, users, body, status, words):
    response = await api.http.post(f"{BASE}/locks", json=body, headers=users["alice"])
    assert response.status_code == status
    assert words in response.json()["message"]
    assert await history(api) == []


async def test_bodies_that_are_not_json_objects_are_refused(api, users):
    for content in (b"{", b"[1]", b"x" * 70_000):
        response = await api.http.post(f"{BASE}/locks", content=content, headers=users["alice"])
        assert response.status_code in (413, 422)
        assert response.json()["message"]
    assert await history(api) == []


async def test_unknown_projects_and_archived_ones(api, users):
    response = await lock(api, users["alice"], "A.umap", project="nope")
    assert response.status_code == 404
    assert "nope" in response.json()["message"]
    await api.data('mutation { createProject(input: {slug: "old", name: "Old"}) { slug } }')
    await api.data('mutation { updateProject(slug: "old", input: {archived: true}) { slug } }')
    archived = await lock(api, users["alice"], "A.umap", project="OLD")
    assert archived.status_code == 409
    assert "archived" in archived.json()["message"]


async def test_batch_without_an_upstream_says_what_to_set(api, users):
    response = await api.http.post(
        f"{BASE}/objects/batch", json={"operation": "upload", "objects": []}, headers=users["alice"]
    )
    assert response.status_code == 404
    assert "lfsUpstreamUrl" in response.json()["message"]


UPDATE_UPSTREAM = """mutation($input: UpdateProjectInput!) {
    updateProject(slug: "default", input: $input) { lfsUpstreamUrl hasLfsUpstreamAuthorization }
}"""


async def test_only_admins_set_the_upstream_and_its_authorization_is_write_only(api, users):
    given = {"lfsUpstreamUrl": "https://lfs.example.com/org/repo.git/info/lfs/"}
    given["lfsUpstreamAuthorization"] = "Bearer upstream-secret"
    data = await api.data(UPDATE_UPSTREAM, {"input": given})
    assert data["updateProject"] == {
        "lfsUpstreamUrl": "https://lfs.example.com/org/repo.git/info/lfs",
        "hasLfsUpstreamAuthorization": True,
    }
    alice = (await api.login("alice", USER_PASSWORD))["accessToken"]
    code, _ = await api.error(UPDATE_UPSTREAM, {"input": {"lfsUpstreamUrl": None}}, token=alice)
    assert code == "FORBIDDEN"
    cleared = await api.data(UPDATE_UPSTREAM, {"input": {"lfsUpstreamAuthorization": None}})
    assert cleared["updateProject"]["hasLfsUpstreamAuthorization"] is False
    assert cleared["updateProject"]["lfsUpstreamUrl"].startswith("https://lfs.example.com")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lfsUpstreamUrl", "ftp://lfs.example.com/x"),
        ("lfsUpstreamUrl", "https://user:secret@lfs.example.com/x"),
        ("lfsUpstreamUrl", "https://lfs.example.com/x?token=1"),
        ("lfsUpstreamUrl", "not a url"),
        ("lfsUpstreamAuthorization", "Bearer a\r\nX-Evil: 1"),
        ("lfsUpstreamAuthorization", "   "),
    ],
)
async def test_bad_upstream_settings_are_refused_and_change_nothing(api, users, field, value):
    code, error = await api.error(UPDATE_UPSTREAM, {"input": {field: value}})
    assert code == "BAD_USER_INPUT"
    assert "secret" not in error["message"]
    data = await api.data(
        '{ project(slug: "default") { lfsUpstreamUrl hasLfsUpstreamAuthorization } }'
    )
    assert data["project"] == {"lfsUpstreamUrl": None, "hasLfsUpstreamAuthorization": False}


class EchoingUpstream:
    """A real HTTP server standing in for an LFS server: records the headers it gets, and
    answers with an upload action that carries them on when `echo` is set (as some do)."""

    def __init__(self) -> None:
        import http.server
        import threading

        upstream = self
        self.received: list[dict] = []
        self.echo = True

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                upstream.received.append(dict(self.headers))
                header = {"Authorization": self.headers["Authorization"]} if upstream.echo else {}
                action = {"href": "http://upstream/put", "header": header}
                body = json.dumps({"objects": [{"oid": "0" * 64, "actions": {"upload": action}}]})
                self.send_response(200)
                self.send_header("Content-Type", LFS)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/repo.git/info/lfs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_batches_go_upstream_with_holdfasts_credentials_and_never_echo_them(api, users):
    upstream = EchoingUpstream()
    try:
        await api.data(
            UPDATE_UPSTREAM,
            {
                "input": {
                    "lfsUpstreamUrl": upstream.url,
                    "lfsUpstreamAuthorization": "Bearer upstream-secret-123",
                }
            },
        )
        batch = {"operation": "upload", "objects": [{"oid": "0" * 64, "size": 1}]}
        echoed = await api.http.post(f"{BASE}/objects/batch", json=batch, headers=users["alice"])
        assert echoed.status_code == 502
        assert "upstream-secret" not in echoed.text
        upstream.echo = False
        answer = await api.http.post(f"{BASE}/objects/batch", json=batch, headers=users["alice"])
        assert answer.status_code == 200
        assert answer.json()["objects"][0]["actions"]["upload"]["href"] == "http://upstream/put"
        assert [headers["Authorization"] for headers in upstream.received] == [
            "Bearer upstream-secret-123"
        ] * 2
    finally:
        upstream.close()


async def test_an_expired_lock_cannot_be_unlocked_by_id(api, users):
    data = await api.data(
        'mutation { acquireLock(project: "default", path: "T.umap", ttlSeconds: 1) { id } }'
    )
    await asyncio.sleep(1.2)
    lock_id = data["acquireLock"]["id"]
    for who in ("admin", "bob"):
        response = await api.http.post(
            f"{BASE}/locks/{lock_id}/unlock", json={"force": True}, headers=users[who]
        )
        assert response.status_code == 404
    listed = await api.http.get(f"{BASE}/locks", params={"id": lock_id}, headers=users["bob"])
    assert listed.json()["locks"] == []

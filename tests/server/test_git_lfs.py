"""The stock `git lfs` client (Debian's git-lfs) against a real Holdfast server, with giftless as
the real upstream object server: push and pull of a real file through Holdfast, lock, conflict,
list, verify, a push refused by `locksverify`, unlock, force-unlock by id, and a subscriber that
sees every lock change live."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from tests.conftest import ADMIN_PASSWORD, ROOT, USER_PASSWORD, free_port
from tests.support.graphql import GraphQL, Subscription

GIFTLESS_FLASK = ROOT / ".venv-giftless" / "bin" / "flask"
ASSET = "Content/Maps/Hero.uasset"


@dataclass
class Giftless:
    url: str
    storage: Path
    token: str


@pytest.fixture
def giftless(tmp_path):
    """giftless 0.6.2 in its own venv (make test builds it), with JWT auth and local storage."""
    assert GIFTLESS_FLASK.exists(), "run `make test` (it builds .venv-giftless)"
    secret = secrets.token_hex(32)
    storage = tmp_path / "giftless-storage"
    config = tmp_path / "giftless.yaml"
    config.write_text(
        json.dumps(
            {
                "AUTH_PROVIDERS": [
                    {
                        "factory": "giftless.auth.jwt:factory",
                        "options": {"algorithm": "HS256", "private_key": secret},
                    }
                ],
                "TRANSFER_ADAPTERS": {
                    "basic": {
                        "factory": "giftless.transfer.basic_streaming:factory",
                        "options": {
                            "storage_class": "giftless.storage.local_storage:LocalStorage",
                            "storage_options": {"path": str(storage)},
                        },
                    }
                },
                "PRE_AUTHORIZED_ACTION_PROVIDER": {
                    "options": {"private_key": secrets.token_hex(32), "default_lifetime": 600}
                },
                "LEGACY_ENDPOINTS": False,
            }
        )
    )
    port = free_port()
    log = (tmp_path / "giftless.log").open("w")
    env = {**os.environ, "GIFTLESS_CONFIG_FILE": str(config)}
    process = subprocess.Popen(
        [GIFTLESS_FLASK, "--app", "giftless.wsgi_entrypoint", "run", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "giftless.log").read_text()) from None
            time.sleep(0.1)
    token = jwt.encode(
        {
            "sub": "holdfast",
            "scopes": ["obj:studio/*"],
            "iat": int(time.time()),
            "exp": int(time.time()) + 3600,
        },
        secret,
        algorithm="HS256",
    )
    yield Giftless(f"http://127.0.0.1:{port}/studio/game.git/info/lfs", storage, token)
    process.terminate()
    process.wait(timeout=10)


class GitUser:
    """One person's git: a HOME of their own with git-lfs set up and stored credentials."""

    def __init__(self, home: Path, username: str, secret: str, server_url: str) -> None:
        self.home = home
        self.username = username
        assert shutil.which("git-lfs"), "git-lfs is needed (Debian package git-lfs)"
        home.mkdir(parents=True)
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GIT_", "HOLDFAST_"))
        }
        self.env.update(
            HOME=str(home),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_TERMINAL_PROMPT="0",
            GIT_AUTHOR_NAME=username,
            GIT_AUTHOR_EMAIL=f"{username}@example.com",
            GIT_COMMITTER_NAME=username,
            GIT_COMMITTER_EMAIL=f"{username}@example.com",
        )
        host = server_url.removeprefix("http://")
        (home / "credentials").write_text(f"http://{username}:{secret}@{host}\n")
        store = f"store --file={home / 'credentials'}"
        self.run_sync("git", "config", "--global", "credential.helper", store)
        self.run_sync("git", "config", "--global", "init.defaultBranch", "main")
        self.run_sync("git", "lfs", "install", "--skip-repo")

    def run_sync(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            args, cwd=cwd or self.home, env=self.env, capture_output=True, text=True, timeout=120
        )

    async def run(self, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
        result = await asyncio.to_thread(self.run_sync, *args, cwd=cwd)
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result


async def api_token(server_url: str, username: str, password: str) -> str:
    api = GraphQL(server_url)
    await api.sign_in(username, password)
    data = await api.data('mutation { createApiToken(name: "git lfs") { token } }')
    await api.close()
    return data["createApiToken"]["token"]


async def test_the_stock_git_lfs_client_against_holdfast(server, giftless, tmp_path):
    admin = GraphQL(server.url)
    await admin.sign_in("admin", ADMIN_PASSWORD)
    for name in ("alice", "bob"):
        await admin.data(
            "mutation($u: String!, $p: String!) { createUser(input: {username: $u, "
            'email: "x@example.com", password: $p}) { id } }',
            {"u": name, "p": USER_PASSWORD},
        )
    await admin.data(
        """mutation($url: String!, $auth: String!) { updateProject(slug: "default",
            input: {lfsUpstreamUrl: $url, lfsUpstreamAuthorization: $auth}) { slug } }""",
        {"url": giftless.url, "auth": f"Bearer {giftless.token}"},
    )
    lfs_url = f"{server.url}/lfs/default"
    alice = GitUser(
        tmp_path / "alice", "alice", await api_token(server.url, "alice", USER_PASSWORD), server.url
    )
    bob = GitUser(
        tmp_path / "bob", "bob", await api_token(server.url, "bob", USER_PASSWORD), server.url
    )
    boss = GitUser(tmp_path / "boss", "admin", ADMIN_PASSWORD, server.url)  # a password works too

    origin = tmp_path / "origin.git"
    await alice.run("git", "init", "--bare", str(origin), cwd=tmp_path)
    work_a = tmp_path / "work-a"
    await alice.run("git", "init", str(work_a), cwd=tmp_path)
    (work_a / ".gitattributes").write_text(
        "*.uasset filter=lfs diff=lfs merge=lfs -text lockable\n"
    )
    (work_a / ".lfsconfig").write_text(f'[lfs]\n\turl = "{lfs_url}"\n')
    (work_a / ASSET).parent.mkdir(parents=True)
    content = secrets.token_bytes(200_000)
    (work_a / ASSET).write_bytes(content)
    await alice.run("git", "add", ".", cwd=work_a)
    await alice.run("git", "commit", "-q", "-m", "hero", cwd=work_a)
    await alice.run("git", "remote", "add", "origin", str(origin), cwd=work_a)

    subscriber = GraphQL(server.url)
    await subscriber.sign_in("admin", ADMIN_PASSWORD)
    async with Subscription(server.ws_url, subscriber.token, {"project": "default"}) as events:
        # Objects go through Holdfast to giftless, and come back to another clone.
        await alice.run("git", "push", "-q", "-u", "origin", "main", cwd=work_a)
        oid = hashlib.sha256(content).hexdigest()
        stored = list(giftless.storage.rglob(oid))
        assert stored and stored[0].read_bytes() == content
        work_b = tmp_path / "work-b"
        await bob.run("git", "clone", "-q", str(origin), str(work_b), cwd=tmp_path)
        assert (work_b / ASSET).read_bytes() == content
        await bob.run("git", "config", f"lfs.{lfs_url}.locksverify", "true", cwd=work_b)

        locked = await alice.run("git", "lfs", "lock", ASSET, "--json", cwd=work_a)
        [taken] = json.loads(locked.stdout)
        lock_id = taken["id"]
        graph = await admin.data(
            '{ lock(project: "default", path: "content/maps/hero.uasset") '
            "{ id branch owner { username } } }"
        )
        assert graph["lock"] == {"id": lock_id, "branch": "main", "owner": {"username": "alice"}}

        refused = await bob.run("git", "lfs", "lock", ASSET, cwd=work_b, check=False)
        assert refused.returncode == 2
        assert "alice" in refused.stderr

        listed = await bob.run("git", "lfs", "locks", cwd=work_b)
        assert listed.stdout.split("\n")[0].split("\t")[:2] == [ASSET, "alice"]
        assert f"ID:{lock_id}" in listed.stdout
        theirs = json.loads(
            (await bob.run("git", "lfs", "locks", "--verify", "--json", cwd=work_b)).stdout
        )
        assert theirs["ours"] == []
        assert [(entry["path"], entry["owner"]["name"]) for entry in theirs["theirs"]] == [
            (ASSET, "alice")
        ]
        ours = json.loads(
            (await alice.run("git", "lfs", "locks", "--verify", "--json", cwd=work_a)).stdout
        )
        assert [entry["path"] for entry in ours["ours"]] == [ASSET]
        assert ours["theirs"] == []

        # bob changes the file alice holds: with locksverify his push is refused.
        (work_b / ASSET).write_bytes(secrets.token_bytes(1000))
        await bob.run("git", "commit", "-q", "-am", "bob's change", cwd=work_b)
        pushed = await bob.run("git", "push", "origin", "main", cwd=work_b, check=False)
        assert pushed.returncode != 0
        assert "Cannot update locked files" in pushed.stderr, pushed.stderr
        head = await bob.run("git", "rev-parse", "main", cwd=origin)
        assert (
            head.stdout.strip()
            == (await alice.run("git", "rev-parse", "HEAD", cwd=work_a)).stdout.strip()
        )

        await alice.run("git", "lfs", "unlock", ASSET, cwd=work_a)
        await bob.run("git", "lfs", "lock", ASSET, cwd=work_b)
        await bob.run("git", "push", "-q", "origin", "main", cwd=work_b)
        bobs_lock = json.loads((await bob.run("git", "lfs", "locks", "--json", cwd=work_b)).stdout)
        [entry] = bobs_lock
        assert entry["owner"]["name"] == "bob"

        not_forced = await alice.run(
            "git", "lfs", "unlock", "--id", entry["id"], cwd=work_a, check=False
        )
        assert not_forced.returncode != 0
        await boss.run("git", "lfs", "unlock", "--force", "--id", entry["id"], cwd=work_a)
        assert json.loads((await bob.run("git", "lfs", "locks", "--json", cwd=work_b)).stdout) == []

        seen = await events.wait_for(4)
        assert [
            (event["kind"], event["lock"]["owner"]["username"], event["actor"]["username"])
            for event in seen
        ] == [
            ("ACQUIRED", "alice", "alice"),
            ("RELEASED", "alice", "alice"),
            ("ACQUIRED", "bob", "bob"),
            ("FORCE_RELEASED", "bob", "admin"),
        ]
        assert {event["lock"]["path"] for event in seen} == {ASSET}
        assert events.seqs == list(range(seen[0]["seq"], seen[0]["seq"] + 4))
    await admin.close()
    await subscriber.close()


async def test_batch_requests_are_forwarded_with_holdfasts_credentials_only(api, admin, giftless):
    """The client's own credentials never reach the upstream; a refusal or an unreachable
    upstream is a 502 that names neither the secret nor the upstream's answer."""
    batch = {"operation": "upload", "transfers": ["basic"], "objects": []}
    basic = {
        "Authorization": "Basic " + base64.b64encode(b"admin:" + ADMIN_PASSWORD.encode()).decode()
    }
    update = """mutation($input: UpdateProjectInput!) {
        updateProject(slug: "default", input: $input) { slug } }"""

    await api.data(update, {"input": {"lfsUpstreamUrl": giftless.url}})
    refused = await api.http.post("/lfs/default/objects/batch", json=batch, headers=basic)
    assert refused.status_code == 502
    assert "refused" in refused.json()["message"]

    await api.data(update, {"input": {"lfsUpstreamAuthorization": f"Bearer {giftless.token}"}})
    oid = "0" * 64
    batch["objects"] = [{"oid": oid, "size": 3}]
    answer = await api.http.post("/lfs/default/objects/batch", json=batch, headers=basic)
    assert answer.status_code == 200
    [wanted] = answer.json()["objects"]
    assert wanted["oid"] == oid
    assert wanted["actions"]["upload"]["href"].startswith(giftless.url.split("/studio")[0])

    await api.data(update, {"input": {"lfsUpstreamUrl": f"http://127.0.0.1:{free_port()}/x"}})
    unreachable = await api.http.post("/lfs/default/objects/batch", json=batch, headers=basic)
    assert unreachable.status_code == 502
    assert giftless.token not in unreachable.text

"""examples/unreal/holdfast_lock_cache.py against real Holdfast processes (real uvicorn, real
websockets, real git credential helper): paged load, live events, case-insensitive lookups,
release requests, reconnection with `since` across a restart on the same port, a refetch after
the events it needed were purged, and the script's terminal mode as a subprocess.

The `unreal` glue of the script only runs inside Unreal Editor and is not exercised here."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import (
    ADMIN_PASSWORD,
    ROOT,
    USER_PASSWORD,
    ServerProcess,
    free_port,
    start_server,
    stop_server,
)
from tests.support.graphql import GraphQL

SCRIPT = ROOT / "examples" / "unreal" / "holdfast_lock_cache.py"


def load_script():
    spec = importlib.util.spec_from_file_location("holdfast_lock_cache", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hf = load_script()

LOCKS = """query($after: String) { locks(project: "default", first: 500, after: $after) {
    seq pageInfo { hasNextPage endCursor } edges { node { id path owner { username } } } } }"""


def serve_on(settings, port: int, log: Path) -> ServerProcess:
    """`holdfast serve` on a port of our choosing (to restart it on the same one)."""
    return start_server(settings, log, port=port)


def remote(url: str, token: str | None = None) -> GraphQL:
    return GraphQL(url, token)


async def server_state(api: GraphQL) -> tuple[dict[str, tuple[str, str]], int]:
    """Every held lock {path: (owner, id)} and the `seq` of the first page."""
    held, after, seq = {}, None, None
    while True:
        page = (await api.data(LOCKS, {"after": after}))["locks"]
        seq = page["seq"] if seq is None else seq
        for edge in page["edges"]:
            node = edge["node"]
            held[node["path"]] = (node["owner"]["username"], node["id"])
        if not page["pageInfo"]["hasNextPage"]:
            return held, seq
        after = page["pageInfo"]["endCursor"]


def cached(cache) -> dict[str, tuple[str, str]]:
    return {path: (lock["owner"]["username"], lock["id"]) for path, lock in cache.locks().items()}


async def wait_until(cache, predicate, timeout: float = 20) -> None:
    assert await asyncio.to_thread(cache.wait_until, predicate, timeout), (
        cache.seq,
        cache.error,
    )


async def api_token(api: GraphQL, token: str) -> str:
    data = await api.data(
        'mutation { createApiToken(name: "unreal editor") { token } }', token=token
    )
    return data["createApiToken"]["token"]


async def acquire(api: GraphQL, path: str, token: str, **extra) -> dict:
    data = await api.data(
        "mutation($path: String!, $comment: String, $ttl: Int) { acquireLock(project: "
        '"default", path: $path, comment: $comment, ttlSeconds: $ttl) { id path } }',
        {"path": path, "comment": extra.get("comment"), "ttl": extra.get("ttl")},
        token=token,
    )
    return data["acquireLock"]


async def release(api: GraphQL, path: str, token: str, force: bool = False) -> None:
    await api.data(
        'mutation($path: String!, $force: Boolean) { releaseLock(project: "default", '
        "path: $path, force: $force) { id } }",
        {"path": path, "force": force},
        token=token,
    )


async def request_release(api: GraphQL, path: str, token: str, message: str) -> None:
    await api.data(
        'mutation($path: String!, $m: String) { requestLockRelease(project: "default", '
        "path: $path, message: $m) { seq } }",
        {"path": path, "m": message},
        token=token,
    )


async def sign_in_people(api: GraphQL) -> dict[str, str]:
    """Access tokens of admin, mira and noor (created here); `api` reads as admin."""
    tokens = {"admin": (await api.login("admin", ADMIN_PASSWORD))["accessToken"]}
    for name in ["mira", "noor"]:
        await api.create_user(name, token=tokens["admin"])
        tokens[name] = (await api.login(name, USER_PASSWORD))["accessToken"]
    api.token = tokens["admin"]  # for reads that name no token
    return tokens


def events_only(drained: list[dict]) -> list[dict]:
    return [event for event in drained if event["kind"] not in {hf.LOADED, hf.FAILED}]


async def test_loads_every_page_then_follows_live_changes(server):
    api = remote(server.url)
    people = await sign_in_people(api)
    props = [f"Content/Props/P{index}.uasset" for index in range(7)]
    for path in props:
        await acquire(api, path, people["noor"])
    cache = hf.LockCache(server.url, "default", await api_token(api, people["mira"]), page_size=3)
    cache.start()
    try:
        await wait_until(cache, lambda c: c.loaded and c.connected)
        assert cache.pages_read == 3  # 7 locks, 3 a page
        held, seq = await server_state(api)
        assert (cached(cache), cache.seq) == (held, seq) and seq == 7
        assert cache.username == "mira"
        [loaded] = cache.drain()
        assert (loaded["kind"], loaded["count"], loaded["seq"]) == (hf.LOADED, 7, 7)

        await acquire(api, "Content/Maps/Arena.umap", people["noor"], comment="lighting")
        await acquire(api, "Content/Chars/Hero.uasset", people["mira"])
        await release(api, props[0], people["noor"])
        await release(api, props[1], people["admin"], force=True)
        await request_release(api, "content/props/p2.UASSET", people["mira"], "need it")
        await api.data(
            'mutation { renewLock(project: "default", path: "Content/Props/P3.uasset", '
            "ttlSeconds: 3600) { id } }",
            token=people["noor"],
        )
        await wait_until(cache, lambda c: c.seq == 13)
        held, seq = await server_state(api)
        assert (cached(cache), cache.seq) == (held, 13)
        # Case and slashes do not matter in a case-insensitive project.
        assert cache.holder_of("content/maps/ARENA.umap") == "noor"
        assert cache.holder_of("Content\\Chars\\hero.uasset") == "mira"
        assert cache.holder_of("./Content/Props/P2.uasset") == "noor"  # a request holds nothing
        assert cache.holder_of(props[0]) is None and cache.holder_of(props[1]) is None
        assert cache.lock(props[3])["expiresAt"] is not None

        drained = cache.drain()
        assert [(e["seq"], e["kind"]) for e in drained] == [
            (8, "ACQUIRED"),
            (9, "ACQUIRED"),
            (10, "RELEASED"),
            (11, "FORCE_RELEASED"),
            (12, "RELEASE_REQUESTED"),
            (13, "RENEWED"),
        ]
        request = drained[4]
        assert request["actor"] == {"username": "mira"} and request["message"] == "need it"
        assert request["lock"]["owner"] == {"username": "noor"}
        assert cache.drain() == []  # drained once
        # What the editor glue would log, from the holder's and an onlooker's point of view.
        assert hf.describe(drained[0], "mira") == (
            "warning",
            "Holdfast: noor locked Content/Maps/Arena.umap (lighting)",
        )
        assert hf.describe(drained[1], "mira")[0] == "info"  # my own lock
        assert hf.describe(request, "noor") == (
            "warning",
            "Holdfast: mira asks noor to release Content/Props/P2.uasset: need it",
        )
        assert hf.describe(request, "mira")[0] == "info"
        assert hf.describe(drained[3], "noor") == (
            "warning",
            "Holdfast: admin force-released noor's lock on Content/Props/P1.uasset",
        )
    finally:
        cache.stop()
        await api.http.aclose()


async def test_reconnects_with_since_across_a_restart_and_sees_every_seq_once(
    settings, api, tmp_path
):
    """The server goes away, changes are committed meanwhile (by another process on the same
    database), and a new server comes up on the same port: the cache catches up from `since`."""
    people = await sign_in_people(api)
    port = free_port()
    first = await asyncio.to_thread(serve_on, settings, port, tmp_path / "first.log")
    over_http = remote(first.url, people["admin"])
    for path in ["Content/A.uasset", "Content/B.uasset", "Content/C.uasset"]:
        await acquire(over_http, path, people["mira"])
    cache = hf.LockCache(
        first.url,
        "default",
        await api_token(api, people["noor"]),
        page_size=2,
        backoff=(0.2, 0.5, 1),
    ).start()
    second = None
    try:
        await wait_until(cache, lambda c: c.loaded and c.connected)
        await acquire(over_http, "Content/D.uasset", people["noor"])
        await wait_until(cache, lambda c: c.seq == 4)

        await asyncio.to_thread(stop_server, first)
        await wait_until(cache, lambda c: not c.connected)
        # Committed while no server listens on the cache's port.
        await release(api, "Content/A.uasset", people["mira"])
        await acquire(api, "content/a.uasset", people["noor"])
        await request_release(api, "Content/B.uasset", people["noor"], "after the build?")
        await release(api, "Content/C.uasset", people["admin"], force=True)
        assert not cache.connected and cache.seq == 4

        second = await asyncio.to_thread(serve_on, settings, port, tmp_path / "second.log")
        await wait_until(cache, lambda c: c.seq == 8 and c.connected)
        await release(over_http, "Content/D.uasset", people["noor"])
        await acquire(over_http, "Content/E.uasset", people["admin"])
        held, seq = await server_state(over_http)
        assert seq == 10
        await wait_until(cache, lambda c: c.seq == seq)
        assert cached(cache) == held
        assert cache.holder_of("CONTENT/A.UASSET") == "noor"
        assert cache.subscriptions >= 2 and cache.loads == 1

        drained = cache.drain()
        assert [e["kind"] for e in drained if e["kind"] == hf.LOADED] == [hf.LOADED]
        # Every seq after the initial load, exactly once and in order.
        assert [e["seq"] for e in events_only(drained)] == list(range(4, 11))
        assert [e["kind"] for e in events_only(drained)] == [
            "ACQUIRED",
            "RELEASED",
            "ACQUIRED",
            "RELEASE_REQUESTED",
            "FORCE_RELEASED",
            "RELEASED",
            "ACQUIRED",
        ]
    finally:
        cache.stop()
        await over_http.http.aclose()
        if second is not None:
            await asyncio.to_thread(stop_server, second)
        elif first.process.poll() is None:
            await asyncio.to_thread(stop_server, first)


async def test_reloads_the_list_when_the_events_it_needs_were_purged(settings, app, api, tmp_path):
    people = await sign_in_people(api)
    port = free_port()
    first = await asyncio.to_thread(serve_on, settings, port, tmp_path / "first.log")
    await acquire(api, "Content/Keep.uasset", people["mira"])
    await acquire(api, "Content/Gone.uasset", people["mira"])
    cache = hf.LockCache(
        first.url, "default", await api_token(api, people["noor"]), backoff=(0.2, 0.5)
    ).start()
    second = None
    try:
        await wait_until(cache, lambda c: c.loaded and c.connected)
        await asyncio.to_thread(stop_server, first)
        await wait_until(cache, lambda c: not c.connected)
        await release(api, "Content/Gone.uasset", people["mira"])
        await acquire(api, "Content/New.uasset", people["noor"])
        # The retention job with a zero retention: every stored event goes.
        await app.state.services.locks.expire_due(retention=timedelta(0))

        second = await asyncio.to_thread(serve_on, settings, port, tmp_path / "second.log")
        await wait_until(cache, lambda c: c.loads == 2 and c.connected)
        held, seq = await server_state(api)
        assert (cached(cache), cache.seq) == (held, seq) and seq == 4
        assert set(held) == {"Content/Keep.uasset", "Content/New.uasset"}
        drained = cache.drain()
        assert [(e["kind"], e["count"]) for e in drained] == [(hf.LOADED, 2), (hf.LOADED, 2)]
        # And it follows on live from the reloaded seq.
        await acquire(api, "Content/After.uasset", people["mira"])
        await wait_until(cache, lambda c: c.holder_of("content/after.uasset") == "mira")
        assert [e["seq"] for e in cache.drain()] == [5]
    finally:
        cache.stop()
        if second is not None:
            await asyncio.to_thread(stop_server, second)
        elif first.process.poll() is None:
            await asyncio.to_thread(stop_server, first)


async def test_a_bad_token_stops_the_cache_with_a_notice(server):
    cache = hf.LockCache(server.url, "default", "hf_not-a-real-token").start()
    try:
        await wait_until(cache, lambda c: c.error is not None)
        [failed] = cache.drain()
        assert failed["kind"] == hf.FAILED and "UNAUTHENTICATED" in failed["message"]
        assert hf.describe(failed, None)[0] == "error"
        await asyncio.to_thread(cache._thread.join, 5)
        assert not cache._thread.is_alive()
    finally:
        cache.stop()


def git_home(tmp_path: Path) -> dict[str, str]:
    """An environment whose git keeps credentials in a file (credential.helper=store)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[credential]\n\thelper = store\n")
    return {
        **{
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GIT_", "HOLDFAST_"))
        },
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def approve(env: dict[str, str], url: str, username: str, password: str) -> None:
    host = url.split("://", 1)[1]
    subprocess.run(
        ["git", "credential", "approve"],
        input=f"protocol=http\nhost={host}\nusername={username}\npassword={password}\n\n",
        text=True,
        env=env,
        check=True,
    )


def test_the_token_comes_from_git_credentials(tmp_path, monkeypatch):
    env = git_home(tmp_path)
    approve(env, "http://127.0.0.1:8123", "mira", "hf_stored")
    for key in ["HOME", "XDG_CONFIG_HOME", "GIT_CONFIG_NOSYSTEM"]:
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("HOLDFAST_TOKEN", raising=False)
    assert hf.token_from_git("http://127.0.0.1:8123") == ("mira", "hf_stored")
    assert hf.token_from_git("http://127.0.0.1:8124") is None  # never prompts
    assert hf.resolve_token("http://127.0.0.1:8123", None) == "hf_stored"
    assert hf.resolve_token("http://127.0.0.1:8123", "hf_given") == "hf_given"
    with pytest.raises(RuntimeError, match="no Holdfast token"):
        hf.resolve_token("http://127.0.0.1:8124", None)
    with pytest.raises(RuntimeError, match="Unreal Editor"):
        hf.start()  # the editor glue refuses to run outside the editor


async def test_terminal_mode_prints_a_lock_taken_while_it_runs(server, tmp_path):
    """`python holdfast_lock_cache.py --server … --project default`, its token from git."""
    api = remote(server.url)
    people = await sign_in_people(api)
    env = git_home(tmp_path)
    approve(env, server.url, "mira", await api_token(api, people["mira"]))
    process = subprocess.Popen(
        [sys.executable, "-u", str(SCRIPT), "--server", server.url, "--project", "default"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    ).start()
    seen: list[str] = []

    async def wait_for_line(text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in seen):
            assert time.monotonic() < deadline, "".join(seen)
            try:
                seen.append(lines.get_nowait())
            except queue.Empty:
                await asyncio.sleep(0.05)

    try:
        await wait_for_line("0 locks in default at seq 0")
        await acquire(api, "Content/Maps/Standalone.umap", people["noor"], comment="blockout")
        await wait_for_line("Content/Maps/Standalone.umap\tnoor")
        process.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(process.wait, 10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await api.http.aclose()
    output = "".join(seen)
    assert "Holdfast: noor locked Content/Maps/Standalone.umap (blockout)" in output
    assert "-- 1 lock at seq 1" in output

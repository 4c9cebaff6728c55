"""Live lock events through real uvicorn processes and real websocket clients: delivery,
filters, gapless replay with `since`, replicas sharing Redis, a replica killed mid-burst, slow
subscribers and expiring tokens."""

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import select

from db.engine import Database
from db.locks import Lock, LockEvent
from db.projects import Project
from db.streams import Stream
from tests.conftest import (
    ADMIN_PASSWORD,
    ROOT,
    USER_PASSWORD,
    free_port,
    start_server,
    stop_server,
)
from tests.support.factories import lock, unlock
from tests.support.graphql import GraphQL, Subscription


async def stored(settings, model) -> list:
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            return list((await session.execute(select(model))).scalars().all())
    finally:
        await db.dispose()


@pytest.fixture
async def mira(server):
    admin = GraphQL(server.url)
    await admin.sign_in("admin", ADMIN_PASSWORD)
    for name in ["mira", "noor"]:
        await admin.data(
            "mutation($u: String!, $p: String!) { createUser(input: {username: $u, "
            'email: "x@example.com", password: $p}) { id } }',
            {"u": name, "p": USER_PASSWORD},
        )
    await admin.close()
    api = GraphQL(server.url)
    await api.sign_in("mira", USER_PASSWORD)
    yield api
    await api.close()


async def test_a_subscriber_sees_changes_as_they_commit(server, mira):
    async with Subscription(server.ws_url, mira.token, {"project": "default"}) as live:
        await lock(mira, "Content/Maps/Arena.umap")
        await unlock(mira, "Content/Maps/Arena.umap")
        events = await live.wait_for(2)
    assert [(e["seq"], e["kind"]) for e in events] == [(1, "ACQUIRED"), (2, "RELEASED")]
    assert events[0]["lock"]["path"] == "Content/Maps/Arena.umap"
    assert events[0]["lock"]["owner"] == {"username": "mira"}
    assert events[0]["actor"] == {"username": "mira"}


async def test_path_prefix_filters_and_since_replays_then_goes_live(server, mira):
    for path in ["Content/A.uasset", "Config/B.ini", "Content/C.uasset"]:
        await lock(mira, path)
    variables = {"project": "default", "prefix": "content/", "since": 1}
    async with Subscription(server.ws_url, mira.token, variables) as live:
        await live.wait_for(1)
        await unlock(mira, "Content/A.uasset")
        await unlock(mira, "Config/B.ini")
        events = await live.wait_for(2)
        await asyncio.sleep(0.3)
    assert [(e["seq"], e["kind"], e["lock"]["path"]) for e in live.events] == [
        (3, "ACQUIRED", "Content/C.uasset"),
        (4, "RELEASED", "Content/A.uasset"),
    ]
    assert events == live.events


async def test_bad_subscriptions_are_refused(server, mira):
    for variables, code in [
        ({"project": "nope"}, "NOT_FOUND"),
        ({"project": "default", "since": -1}, "BAD_USER_INPUT"),
        ({"project": "default", "since": 99}, "BAD_USER_INPUT"),
        ({"project": "default", "prefix": "../x"}, "BAD_USER_INPUT"),
    ]:
        async with Subscription(server.ws_url, mira.token, variables) as live:
            await asyncio.wait_for(live.completed.wait(), 10)
        assert live.errors[0]["extensions"]["code"] == code, (variables, live.errors)
    async with Subscription(server.ws_url, "not-a-token", {"project": "default"}) as refused:
        await asyncio.wait_for(refused.completed.wait(), 10)
    assert refused.closed == 4403


async def test_an_expired_access_token_ends_the_subscription(settings, tmp_path):
    running = start_server(settings.replace(access_token_ttl=2), tmp_path / "server.log")
    try:
        api = GraphQL(running.url)
        await api.sign_in("admin", ADMIN_PASSWORD)
        async with Subscription(running.ws_url, api.token, {"project": "default"}) as live:
            await lock(api, "A.uasset")
            await live.wait_for(1)
            await asyncio.wait_for(live.completed.wait(), 10)
        assert live.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert live.errors[0]["extensions"]["reason"] == "expired"
        await api.close()
    finally:
        stop_server(running)


async def test_a_slow_subscriber_is_cut_off_without_holding_back_the_others(settings, tmp_path):
    rounds = 40
    running = start_server(settings.replace(subscriber_queue_size=5), tmp_path / "server.log")
    try:
        api = GraphQL(running.url)
        await api.sign_in("admin", ADMIN_PASSWORD)
        slow_socket = socket.socket()
        slow_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow_socket.connect(("127.0.0.1", int(running.url.rsplit(":", 1)[1])))
        slow = Subscription(
            running.ws_url,
            api.token,
            {"project": "default"},
            sock=slow_socket,
            max_queue=1,
            ping_interval=None,
        )
        fast = Subscription(running.ws_url, api.token, {"project": "default"})
        async with fast, slow:
            slow.paused = True  # it stops reading: its buffers fill, then its queue
            # Enough bytes to fill the kernel's socket buffers (up to 4 MiB) and more.
            paths = [f"Content/Bulk/{index:04}.uasset" for index in range(100)]
            for _ in range(rounds):
                await api.data(
                    "mutation($p: [String!]!, $c: String) { acquireLocks(project: "
                    '"default", paths: $p, comment: $c) { id } }',
                    {"p": paths, "c": "c" * 500},
                )
                await api.data(
                    "mutation($p: [String!]!) { releaseLocks(project: "
                    '"default", paths: $p) { id } }',
                    {"p": paths},
                )
            events = await fast.wait_for(rounds * 200, timeout=90)
            for _ in range(100):  # it is cut off once it has taken nothing for a while
                if "cut off a subscriber that fell behind" in running.output():
                    break
                await asyncio.sleep(0.1)
            assert "cut off a subscriber that fell behind" in running.output()
            slow.resumed.set()
            # The server closed or dropped the connection: the client sees it end.
            await asyncio.wait_for(slow.finished.wait(), 30)
        assert [event["seq"] for event in events] == list(range(1, rounds * 200 + 1))
        assert len(slow.events) < rounds * 200
        assert slow.closed in {1013, 1006}
        await api.close()
    finally:
        stop_server(running)


# -- replicas ------------------------------------------------------------------------------


@pytest.fixture
def replicas(settings, shared_redis_url, tmp_path):
    shared = settings.replace(redis_url=shared_redis_url)
    started = []
    try:
        for name in ["a", "b"]:
            started.append(start_server(shared, tmp_path / f"{name}.log"))
        yield started
    finally:
        for running in started:
            if running.process.poll() is None:
                stop_server(running)


async def test_a_subscriber_on_one_replica_sees_a_lock_taken_on_another(replicas):
    a, b = replicas
    on_a, on_b = GraphQL(a.url), GraphQL(b.url)
    await on_a.sign_in("admin", ADMIN_PASSWORD)
    on_b.token = on_a.token
    async with Subscription(a.ws_url, on_a.token, {"project": "default"}) as live:
        await lock(on_b, "Content/Shared.uasset")
        [event] = await live.wait_for(1, timeout=5)
    assert (event["kind"], event["lock"]["path"]) == ("ACQUIRED", "Content/Shared.uasset")
    status = '{ lockStatus(project: "default", paths: ["content/shared.uasset"]) { id } }'
    assert (await on_a.data(status)) == (await on_b.data(status))
    assert (await on_a.data(status))["lockStatus"][0]["id"] == event["lock"]["id"]
    await on_a.close()
    await on_b.close()


async def test_gapless_replay_while_writers_race_across_replicas(replicas, settings):
    a, b = replicas
    apis = [GraphQL(server.url) for server in (a, b)]
    await apis[0].sign_in("admin", ADMIN_PASSWORD)
    for api in apis:
        api.token = apis[0].token
    writers_done = asyncio.Event()
    pairs_per_writer = 500

    async def writer(index: int) -> None:
        api = apis[index % 2]
        for pair in range(pairs_per_writer):
            path = f"Content/W{index}/{pair % 7}.uasset"
            assert "errors" not in await lock(api, path)
            assert "errors" not in await unlock(api, path)

    async def reconnecting_subscriber() -> list[int]:
        seen: list[int] = []
        last = 0
        round_ = 0
        while not writers_done.is_set() or last < await newest_seq():
            server = (a, b)[round_ % 2]
            round_ += 1
            async with Subscription(
                server.ws_url, apis[0].token, {"project": "default", "since": last}
            ) as live:
                await asyncio.sleep(random.uniform(0.2, 0.6))
            seen += live.seqs
            if live.seqs:
                last = live.seqs[-1]
        return seen

    async def newest_seq() -> int:
        data = await apis[0].data('{ project(slug: "default") { lastSeq } }')
        return data["project"]["lastSeq"]

    steady = [
        Subscription(server.ws_url, apis[0].token, {"project": "default"}) for server in (a, b)
    ]
    async with steady[0], steady[1]:
        subscriber = asyncio.create_task(reconnecting_subscriber())
        await asyncio.gather(*[writer(index) for index in range(4)])
        writers_done.set()
        seen = await asyncio.wait_for(subscriber, 120)
        for live in steady:
            await live.wait_for(4 * pairs_per_writer * 2, timeout=30)
    history = []
    while True:
        page = (
            await apis[0].data(
                'query($s: Long) { lockHistory(project: "default", since: $s, first: 1000) '
                "{ seq } }",
                {"s": history[-1] if history else 0},
            )
        )["lockHistory"]
        if not page:
            break
        history += [event["seq"] for event in page]
    assert len(history) == 4 * pairs_per_writer * 2
    assert history == list(range(1, len(history) + 1))
    assert seen == history
    # Subscribers that stayed connected throughout saw the same, and kept the feeds running, so
    # the reconnecting one also joined feeds in full flow.
    assert steady[0].seqs == history and steady[1].seqs == history
    for api in apis:
        await api.close()


async def test_killing_a_replica_mid_burst_loses_no_committed_change(replicas, settings):
    a, b = replicas
    api = GraphQL(a.url)
    await api.sign_in("admin", ADMIN_PASSWORD)
    stop = asyncio.Event()

    async def hammer(index: int) -> None:
        pair = 0
        while not stop.is_set():
            path = f"Content/K{index}/{pair % 5}.uasset"
            try:
                await lock(api, path)
                await unlock(api, path)
            except httpx.HTTPError:
                return
            pair += 1

    watcher = Subscription(b.ws_url, api.token, {"project": "default"})
    async with watcher:
        writers = [asyncio.create_task(hammer(index)) for index in range(4)]
        await asyncio.sleep(1.5)
        os.kill(a.process.pid, signal.SIGKILL)
        a.process.wait()
        stop.set()
        await asyncio.gather(*writers, return_exceptions=True)
        await asyncio.sleep(1)
    await api.close()

    [project] = [p for p in await stored(settings, Project) if p.slug == "default"]
    [stream] = [s for s in await stored(settings, Stream) if s.id == project.stream_id]
    last_seq = stream.last_seq
    events = sorted(await stored(settings, LockEvent), key=lambda event: event.seq)
    assert [event.seq for event in events] == list(range(1, last_seq + 1))
    assert last_seq > 10
    # Replaying the events gives exactly the locks the database holds.
    held: dict[int, str] = {}
    for event in events:
        if event.kind == "ACQUIRED":
            held[event.lock_id] = event.path
        elif event.kind in {"RELEASED", "FORCE_RELEASED", "EXPIRED"}:
            del held[event.lock_id]
    assert {lock.id: lock.path for lock in await stored(settings, Lock)} == held
    # What a live subscriber was told is exactly what was committed, in order.
    committed = {event.seq: (event.kind, event.path) for event in events}
    assert watcher.seqs == list(range(1, len(watcher.seqs) + 1))
    assert len(watcher.seqs) >= last_seq - 5
    for seen in watcher.events:
        assert committed[seen["seq"]] == (seen["kind"], seen["lock"]["path"])
    # The surviving replica still serves, and sees the same state.
    survivor = GraphQL(b.url)
    await survivor.sign_in("admin", ADMIN_PASSWORD)
    listed = (await survivor.data('{ locks(project: "default") { totalCount seq } }'))["locks"]
    assert (listed["totalCount"], listed["seq"]) == (len(held), last_seq)
    await survivor.close()


async def test_the_expiry_job_releases_expired_locks_once_across_replicas(
    settings, shared_redis_url, tmp_path
):
    fast_expiry = settings.replace(redis_url=shared_redis_url, lock_expiry_interval=1)
    servers = [start_server(fast_expiry, tmp_path / f"{name}.log") for name in "ab"]
    try:
        api = GraphQL(servers[0].url)
        await api.sign_in("admin", ADMIN_PASSWORD)
        async with Subscription(servers[1].ws_url, api.token, {"project": "default"}) as live:
            for index in range(5):
                await api.post(
                    'mutation($p: String!) { acquireLock(project: "default", path: $p, '
                    "ttlSeconds: 1) { id } }",
                    {"p": f"Content/T{index}.uasset"},
                )
            events = await live.wait_for(10, timeout=20)
            await asyncio.sleep(2.5)
        assert sorted(e["kind"] for e in live.events) == ["ACQUIRED"] * 5 + ["EXPIRED"] * 5
        assert [e["seq"] for e in live.events] == list(range(1, 11))
        assert events[-1]["message"] == "the lock's time ran out"
        assert (await api.data('{ locks(project: "default") { totalCount } }'))["locks"] == {
            "totalCount": 0
        }
        await api.close()
    finally:
        for running in servers:
            stop_server(running)


async def test_subscribers_with_different_selections_each_get_their_own_shape(server, mira):
    """Results are shared per event only between identical documents and variables."""
    small = 'subscription { lockEvents(project: "default") { seq kind } }'
    mine = 'subscription($p: String) { lockEvents(project: "default", pathPrefix: $p) { seq } }'
    full = Subscription(server.ws_url, mira.token, {"project": "default"})
    brief = Subscription(server.ws_url, mira.token, {}, query=small)
    maps = Subscription(server.ws_url, mira.token, {"p": "Maps/"}, query=mine)
    chars = Subscription(server.ws_url, mira.token, {"p": "Chars/"}, query=mine)
    async with full, brief, maps, chars:
        await lock(mira, "Maps/A.umap")
        await lock(mira, "Chars/B.uasset")
        await full.wait_for(2)
        await brief.wait_for(2)
        await maps.wait_for(1)
        await chars.wait_for(1)
        await asyncio.sleep(0.3)
    assert [e["lock"]["path"] for e in full.events] == ["Maps/A.umap", "Chars/B.uasset"]
    assert brief.events == [{"seq": 1, "kind": "ACQUIRED"}, {"seq": 2, "kind": "ACQUIRED"}]
    assert maps.events == [{"seq": 1}] and chars.events == [{"seq": 2}]


async def test_subscribers_keep_receiving_when_redis_goes_away(settings, private_redis, tmp_path):
    """Pub/sub is only the fast path: with Redis gone, feeds find new events in the table."""
    redis_process, redis_url = private_redis
    running = start_server(settings.replace(redis_url=redis_url), tmp_path / "server.log")
    try:
        api = GraphQL(running.url)
        await api.sign_in("admin", ADMIN_PASSWORD)
        async with Subscription(running.ws_url, api.token, {"project": "default"}) as live:
            await lock(api, "Before.uasset")
            await live.wait_for(1)
            redis_process.kill()
            redis_process.wait()
            assert "errors" not in await lock(api, "After.uasset")
            events = await live.wait_for(2, timeout=15)
        assert [(e["seq"], e["lock"]["path"]) for e in events] == [
            (1, "Before.uasset"),
            (2, "After.uasset"),
        ]
        await api.close()
    finally:
        stop_server(running)


async def test_the_holder_sees_requests_and_an_observer_sees_deactivation_live(server, mira):
    admin = GraphQL(server.url)
    await admin.sign_in("admin", ADMIN_PASSWORD)
    noor = GraphQL(server.url)
    await noor.sign_in("noor", USER_PASSWORD)
    await lock(mira, "Content/Hero.uasset")
    holder = Subscription(server.ws_url, mira.token, {"project": "default", "since": 1})
    observer = Subscription(server.ws_url, admin.token, {"project": "default"})
    async with holder, observer:
        await noor.data(
            'mutation { requestLockRelease(project: "default", path: "content/hero.uasset", '
            'message: "need it for the build") { seq } }'
        )
        [request] = await holder.wait_for(1)
        users = (await admin.data("{ users { edges { node { id username } } } }"))["users"]
        mira_id = next(e["node"]["id"] for e in users["edges"] if e["node"]["username"] == "mira")
        await admin.data(
            "mutation($id: ID!) { updateUser(id: $id, input: {active: false}) { id } }",
            {"id": mira_id},
        )
        events = await observer.wait_for(2)
    assert (request["kind"], request["actor"], request["message"]) == (
        "RELEASE_REQUESTED",
        {"username": "noor"},
        "need it for the build",
    )
    assert request["lock"]["owner"] == {"username": "mira"}
    assert [(e["kind"], e["actor"]["username"]) for e in events] == [
        ("RELEASE_REQUESTED", "noor"),
        ("FORCE_RELEASED", "admin"),
    ]
    assert events[1]["message"] == "the holder's account was deactivated"
    for api in (admin, noor):
        await api.close()


async def test_a_separate_worker_process_runs_the_jobs(settings, tmp_path):
    """`holdfast serve` with RUN_JOBS=false leaves jobs to `holdfast worker`."""
    from tests.conftest import settings_environment

    quiet = settings.replace(run_jobs=False, lock_expiry_interval=1)
    running = start_server(quiet, tmp_path / "server.log")
    api = GraphQL(running.url)
    await api.sign_in("admin", ADMIN_PASSWORD)
    expiring = (
        'mutation { acquireLock(project: "default", path: "T.uasset", ttlSeconds: 1) { id } }'
    )
    history = '{ lockHistory(project: "default") { kind } }'
    worker = None
    try:
        await api.data(expiring)
        await asyncio.sleep(2.5)
        assert [e["kind"] for e in (await api.data(history))["lockHistory"]] == ["ACQUIRED"]
        log = (tmp_path / "worker.log").open("w")
        worker = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "worker"],
            env=settings_environment(quiet.replace(run_jobs=True)),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(100):
            kinds = [e["kind"] for e in (await api.data(history))["lockHistory"]]
            if kinds == ["ACQUIRED", "EXPIRED"]:
                break
            await asyncio.sleep(0.1)
        assert kinds == ["ACQUIRED", "EXPIRED"]
        runs = (await api.data("{ jobRuns { kind status worker } }"))["jobRuns"]
        assert "lock-expiry" in {run["kind"] for run in runs}
        assert all(run["worker"].endswith(f":{worker.pid}") for run in runs)  # none in serve
        assert {run["status"] for run in runs} == {"succeeded"}
    finally:
        await api.close()
        if worker is not None:
            worker.terminate()
            assert worker.wait(timeout=10) == 0
        stop_server(running)


async def test_mail_outlives_a_crash_between_commit_and_send(settings, smtp_server, tmp_path):
    """The message and its job commit with the change; a server killed before sending leaves
    both behind, and the next process to run jobs sends it, once."""
    unreachable = settings.replace(
        smtp_host="127.0.0.1", smtp_port=free_port(), smtp_tls="none", run_jobs=False
    )
    first = start_server(unreachable, tmp_path / "first.log")
    api = GraphQL(first.url)
    await api.sign_in("admin", ADMIN_PASSWORD)
    await api.data(
        'mutation { createUser(input: {username: "mira", email: "mira@studio.example", '
        'password: "user-password-1"}) { id } }'
    )
    mira = GraphQL(first.url)
    await mira.sign_in("mira", USER_PASSWORD)
    await lock(mira, "Content/Hero.uasset")
    await api.data(
        'mutation { requestLockRelease(project: "default", path: "Content/Hero.uasset") { seq } }'
    )
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()
    await api.close()
    await mira.close()
    assert smtp_server.messages == []
    second = start_server(
        unreachable.replace(smtp_port=smtp_server.port, run_jobs=True), tmp_path / "second.log"
    )
    try:
        for _ in range(100):
            if smtp_server.messages:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # a second pass must not send it again
    finally:
        stop_server(second)
    [message] = smtp_server.messages
    assert message["To"] == "mira@studio.example"
    assert message["Subject"] == "admin asks you to release Content/Hero.uasset"


async def test_a_settings_change_reaches_the_other_replica_within_a_second(replicas):
    a, b = replicas
    on_a, on_b = GraphQL(a.url), GraphQL(b.url)
    await on_a.sign_in("admin", ADMIN_PASSWORD)
    register = """mutation { register(input: {username: "newbie", email: "n@example.com",
        password: "password-1"}) { user { username } } }"""
    refused = await on_b.post(register)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    await on_a.data(
        'mutation { updateRuntimeSettings(input: {registration: "open"}) { registration } }'
    )
    await asyncio.sleep(1.0)
    assert (await on_b.data(register))["register"]["user"]["username"] == "newbie"
    await on_a.close()
    await on_b.close()


async def test_two_replicas_running_jobs_send_each_message_once(
    settings, shared_redis_url, smtp_server, tmp_path
):
    mailing = settings.replace(
        redis_url=shared_redis_url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_tls="none",
    )
    servers = [start_server(mailing, tmp_path / f"{name}.log") for name in "ab"]
    try:
        admin = GraphQL(servers[0].url)
        await admin.sign_in("admin", ADMIN_PASSWORD)
        await admin.data(
            'mutation { createUser(input: {username: "mira", email: "mira@studio.example", '
            'password: "user-password-1"}) { id } }'
        )
        mira = GraphQL(servers[1].url)
        await mira.sign_in("mira", USER_PASSWORD)
        await lock(mira, "Content/Hero.uasset")
        for index in range(10):
            await admin.data(
                'mutation($m: String!) { requestLockRelease(project: "default", '
                'path: "Content/Hero.uasset", message: $m) { seq } }',
                {"m": f"request {index}"},
            )
        for _ in range(150):
            if len(smtp_server.messages) >= 10:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)  # both replicas keep polling: nothing more may arrive
        runs = (await admin.data("{ jobRuns(first: 100) { kind worker } }"))["jobRuns"]
        await admin.close()
        await mira.close()
    finally:
        for running in servers:
            stop_server(running)
    bodies = sorted(m.get_body(("plain",)).get_content() for m in smtp_server.messages)
    assert len(bodies) == 10 and len(set(bodies)) == 10
    assert len([run for run in runs if run["kind"] == "send-mail"]) == 10

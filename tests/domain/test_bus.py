"""The event bus delivers through real Redis when configured (and in-process otherwise), and
comes back by itself after Redis restarts, telling subscribers they may have missed messages.

The first test also guards the trap DESIGN.md warns of (a pub/sub listener that silently loses
every message): with it, the test times out instead of passing.
"""

import asyncio
import secrets

import pytest

from domain.bus import EventBus
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL, free_port, start_redis


async def test_a_published_message_reaches_every_subscriber():
    channel = f"test-{secrets.token_hex(4)}"
    publisher, subscriber_bus = EventBus(TEST_REDIS_URL), EventBus(TEST_REDIS_URL)
    await publisher.connect()
    if TEST_REDIS_URL:
        await subscriber_bus.connect()
    else:
        subscriber_bus = publisher
    try:
        async with (
            subscriber_bus.subscribe(channel) as first,
            subscriber_bus.subscribe(channel) as second,
        ):
            await asyncio.sleep(0.2)
            for index in range(3):
                await publisher.publish(channel, f"message {index}")
            for messages in (first, second):
                received = [await asyncio.wait_for(anext(messages), 5) for _ in range(3)]
                assert received == ["message 0", "message 1", "message 2"]
    finally:
        await publisher.disconnect()
        if subscriber_bus is not publisher:
            await subscriber_bus.disconnect()


async def test_the_bus_comes_back_after_redis_restarts(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_redis(port, tmp_path)
    bus = EventBus(url)
    try:
        for _ in range(100):
            try:
                await bus.connect()
                break
            except Exception:
                await asyncio.sleep(0.05)
        async with bus.subscribe("events") as messages:
            await asyncio.sleep(0.2)
            await bus.publish("events", "before")
            assert await asyncio.wait_for(anext(messages), 5) == "before"
            server.kill()
            server.wait()
            await asyncio.sleep(0.5)
            server = start_redis(port, tmp_path)
            # The listener reconnects and says that something may have been missed...
            assert await asyncio.wait_for(anext(messages), 15) is None
            # ...and live messages flow again.
            await bus.publish("events", "after")
            assert await asyncio.wait_for(anext(messages), 5) == "after"
    finally:
        await bus.disconnect()
        server.kill()
        server.wait()


POSTGRES_ONLY = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="needs PostgreSQL (HOLDFAST_TEST_DATABASE_URL)"
)


@POSTGRES_ONLY
async def test_postgresql_listen_notify_delivers_and_comes_back_after_its_connection_dies(
    database_url,
):
    """The bus on PostgreSQL alone (HOLDFAST_BUS=postgres): messages cross processes, and when
    its listening connection is killed it reconnects and says what may have been missed."""
    import asyncpg

    publisher, bus = EventBus(database_url), EventBus(database_url)
    await publisher.connect()
    await bus.connect()
    try:
        async with bus.subscribe("events") as messages:
            await publisher.publish("events", "before")
            assert await asyncio.wait_for(anext(messages), 5) == "before"
            await publisher.publish_many([("events", "one"), ("events", "two")])
            assert [await asyncio.wait_for(anext(messages), 5) for _ in range(2)] == ["one", "two"]
            admin = await asyncpg.connect(
                database_url.replace("postgresql+asyncpg://", "postgresql://")
            )
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
            )
            await admin.close()
            assert await asyncio.wait_for(anext(messages), 15) is None
            assert bus.healthy
            await publisher.publish("events", "after")
            assert await asyncio.wait_for(anext(messages), 5) == "after"
    finally:
        await publisher.disconnect()
        await bus.disconnect()

"""The event bus delivers through real Redis when configured (and in-process otherwise).

This guards the broadcaster + redis-py 8 trap in DESIGN.md: with a bad pairing every message
is dropped silently, and this test times out instead of passing.
"""

import asyncio
import secrets

from domain.bus import EventBus
from tests.conftest import TEST_REDIS_URL


async def test_a_published_message_reaches_a_subscriber():
    channel = f"holdfast-test-{secrets.token_hex(4)}"
    publisher, subscriber_bus = EventBus(TEST_REDIS_URL), EventBus(TEST_REDIS_URL)
    await publisher.connect()
    if TEST_REDIS_URL:
        await subscriber_bus.connect()
    else:
        subscriber_bus = publisher
    try:
        async with subscriber_bus.subscribe(channel) as messages:
            await asyncio.sleep(0.2)
            for index in range(3):
                await publisher.publish(channel, f"message {index}")
            received = [await asyncio.wait_for(anext(messages), 5) for _ in range(3)]
        assert received == ["message 0", "message 1", "message 2"]
    finally:
        await publisher.disconnect()
        if subscriber_bus is not publisher:
            await subscriber_bus.disconnect()

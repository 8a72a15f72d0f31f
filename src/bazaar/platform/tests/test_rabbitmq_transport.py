"""The RabbitMQ transport across a broker restart: a delivery whose channel closed is
neither held for its retry delay nor handled beside its redelivery."""

import asyncio
import time
from pathlib import Path

from bazaar.platform.brokers import Outgoing, Subscription
from bazaar.platform.brokers.base import Delivery
from bazaar.platform.brokers.rabbitmq import RabbitTransport
from bazaar.testing.rabbitmq import RabbitMQServer, require_rabbitmq_server

SUBJECT = "bazaar.events.test.held"


async def test_a_retry_held_when_the_broker_restarts_lets_go_at_once(tmp_path: Path) -> None:
    require_rabbitmq_server()
    server = RabbitMQServer(tmp_path).start()
    transport = RabbitTransport(server.url, "held")
    attempts: list[int] = []
    released: list[float] = []
    first, redelivered = asyncio.Event(), asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if len(attempts) == 1:
            first.set()
            await delivery.retry(120.0)  # far beyond the test: only the restart ends it
            released.append(time.monotonic())
        else:
            await delivery.ack()
            redelivered.set()

    subscription = Subscription(SUBJECT, "held-test", 1, "bazaar.deadletter.held.test")
    transport.subscribe(subscription, handle)
    try:
        await transport.start()
        await transport.publish(Outgoing(SUBJECT, b"{}"), 5.0)
        async with asyncio.timeout(30):
            await first.wait()
        restarted = time.monotonic()
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        async with asyncio.timeout(60):
            await redelivered.wait()
        assert attempts == [1, 2]  # delivered again once, with its count
        assert released and released[0] - restarted < 60  # not held for the 120 s
    finally:
        await transport.stop()
        server.close()

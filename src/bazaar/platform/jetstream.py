"""JetStream through nats-py, as `Bus` uses it on a real server: streams declared at
start-up, and durable pull consumers that keep a pull request open rather than poll.

nats-py's `fetch` asks twice for every batch (a "no wait" probe, then a lingering
request) and waits for the whole batch before asking again: at a few events a second
that is three network round trips per event besides its acknowledgement. `PullConsumer`
asks once for as many events as it has room for and hands each over as it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Callable, Coroutine
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError, NotFoundError

from bazaar.platform.logs import get_logger

log = get_logger(__name__)

# JetStream's answer when a stream exists with another configuration (an older release's).
STREAM_NAME_IN_USE = 10058
# Status messages on a pull request's inbox: a heartbeat, and the request is over
# (expired, or ended by the server: consumer deleted, leadership change, shutdown...).
HEARTBEAT = "100"
REQUEST_EXPIRED = "408"
# Extra time for the server's "expired" to arrive before the request is taken as lost
# (with a connection that dropped, say) and asked again.
EXPIRY_GRACE = 0.5
PAUSE_AFTER_REFUSAL = 1.0

MessageHandler = Callable[[Msg], Coroutine[Any, Any, None]]


async def declare_stream(js: JetStreamContext, config: api.StreamConfig, subject: str) -> None:
    """Create the stream, or bring an existing one to `config`, keeping its subjects."""
    try:
        await js.add_stream(config=config, subjects=[subject])
    except BadRequestError as exc:
        if exc.err_code != STREAM_NAME_IN_USE:
            raise
        existing = (await js.stream_info(config.name or "")).config
        subjects = sorted({subject, *(existing.subjects or [])})
        if (existing.num_replicas or 1) > (config.num_replicas or 1):
            # A client that knows one server of a cluster never scales its streams down.
            config = dataclasses.replace(config, num_replicas=existing.num_replicas)
        await js.update_stream(config=config, subjects=subjects)


async def ensure_durable(js: JetStreamContext, stream: str, durable: str, subject: str) -> None:
    """The durable consumer of `subject` events, created on first use (from the first
    event the stream holds), left as it is afterwards: it remembers what was acked."""
    with contextlib.suppress(NotFoundError):
        await js.consumer_info(stream, durable)
        return
    await js.add_consumer(
        stream,
        config=api.ConsumerConfig(
            name=durable,
            durable_name=durable,
            filter_subject=subject,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
        ),
    )


class PullConsumer:
    """Hands the messages of a durable pull consumer to `handle`, at most `capacity` at a
    time, each in its own task. `handle` settles (acks or naks) every message itself.

    One pull request is open at a time, for as many messages as there is room for, for
    `expires` seconds; the next goes out once it is used up or over.
    """

    def __init__(
        self,
        connection: NatsClient,
        stream: str,
        durable: str,
        handle: MessageHandler,
        *,
        capacity: int = 20,
        expires: float = 2.0,
    ) -> None:
        self._connection = connection
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._durable = durable
        self._handle = handle
        self._capacity = capacity
        self._expires = expires
        self._inbox = connection.new_inbox()
        self._subscription: Subscription | None = None
        self._loop: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()  # set while fewer than `capacity` are handled
        self._room.set()
        self._request_over = asyncio.Event()
        self._requested = 0  # messages the open request may still bring
        self._refused = False

    async def start(self) -> None:
        self._subscription = await self._connection.subscribe(self._inbox, cb=self._arrived)
        self._loop = asyncio.create_task(self._ask_forever(), name=f"pull-{self._durable}")

    async def stop(self) -> None:
        """Stops asking and abandons what is being handled: unacknowledged, it comes back."""
        tasks = [self._loop, *self._handlers] if self._loop else [*self._handlers]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._subscription is not None:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await self._subscription.unsubscribe()

    async def _ask_forever(self) -> None:
        while True:
            await self._room.wait()
            # At least one: a request that comes late may have brought more than asked.
            self._requested = max(self._capacity - len(self._handlers), 1)
            self._request_over.clear()
            try:
                await self._ask(self._requested)
            except Exception as exc:  # the connection is closed: nothing to ask yet
                log.warning("pull request not sent", consumer=self._durable, error=repr(exc))
                await asyncio.sleep(PAUSE_AFTER_REFUSAL)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._expires + EXPIRY_GRACE):
                    await self._request_over.wait()
            if self._refused:  # consumer deleted, JetStream unavailable...: not in a loop
                self._refused = False
                await asyncio.sleep(PAUSE_AFTER_REFUSAL)

    async def _ask(self, batch: int) -> None:
        request = {"batch": batch, "expires": int(self._expires * 1e9)}
        await self._connection.publish(self._next, json.dumps(request).encode(), self._inbox)

    async def _arrived(self, msg: Msg) -> None:
        status = msg.headers.get(api.Header.STATUS) if msg.headers else None
        if status is not None:
            if status == HEARTBEAT:
                return
            if status != REQUEST_EXPIRED:
                self._refused = True
                description = msg.headers.get(api.Header.DESCRIPTION) if msg.headers else ""
                log.warning(
                    "pull request refused",
                    consumer=self._durable,
                    status=status,
                    description=description,
                )
            self._request_over.set()
            return
        self._requested -= 1
        if self._requested <= 0:
            self._request_over.set()
        task = asyncio.create_task(self._handle(msg))
        self._handlers.add(task)
        if len(self._handlers) >= self._capacity:
            self._room.clear()
        task.add_done_callback(self._handled)

    def _handled(self, task: asyncio.Task[None]) -> None:
        self._handlers.discard(task)
        if len(self._handlers) < self._capacity:
            self._room.set()
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "message handler failed", consumer=self._durable, error=repr(task.exception())
            )

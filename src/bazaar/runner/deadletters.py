"""Dead letters, visible and replayable.

A consumer that cannot handle an event moves it to `bazaar.deadletter.<consumer>.<type>`
(stream BAZAAR_DEADLETTER) with the error in `x-error` (see `bazaar.platform.bus.Bus`).
Once the cause is fixed, an operator lists them and replays them:

    async with DeadLetters.connect(broker_url) as letters:
        for letter in await letters.list_all(): print(letter.seq, letter.error)
        await letters.replay(seq)        # or: await letters.replay_all()

Replaying publishes the original body again on its event subject (`bazaar.events.<type>`),
so every consumer of that type gets it once more; the envelope id is unchanged, so the
consumers that had handled it already find it in their inbox and do nothing. The message
gets a fresh `Nats-Msg-Id`, or JetStream's duplicate window would drop it as the copy of
the first publication. Only once the broker acknowledged the new copy is the dead letter
deleted: a crash in between leaves both, and replaying again is harmless.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from bazaar.platform.events import (
    DEADLETTER_CONSUMER_HEADER,
    DEADLETTER_ERROR_HEADER,
    DEADLETTER_PREFIX,
    DEADLETTER_STREAM,
    EVENTS_STREAM,
    event_subject,
)


class DeadLetterNotFound(LookupError):
    """No dead letter has this stream sequence (never had one, or it was replayed)."""


@dataclass(frozen=True)
class DeadLetter:
    seq: int  # its sequence in the dead-letter stream: what `replay` takes
    subject: str
    consumer: str
    event_type: str
    error: str
    time: datetime | None  # when it was dead-lettered
    envelope_id: str  # "" if the body is not an envelope
    body: bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "subject": self.subject,
            "consumer": self.consumer,
            "event_type": self.event_type,
            "error": self.error,
            "time": self.time.isoformat() if self.time else None,
            "envelope_id": self.envelope_id,
        }


def read_dead_letter(message: RawStreamMsg) -> DeadLetter:
    """What a stored dead letter says: who gave up on which event, and why."""
    subject = message.subject or ""
    headers = message.headers or {}
    body = message.data or b""
    rest = subject.removeprefix(DEADLETTER_PREFIX)
    consumer = str(headers.get(DEADLETTER_CONSUMER_HEADER) or rest.split(".", 1)[0])
    event_type = rest.removeprefix(f"{consumer}.")
    return DeadLetter(
        seq=int(message.seq or 0),
        subject=subject,
        consumer=consumer,
        event_type=event_type,
        error=str(headers.get(DEADLETTER_ERROR_HEADER) or ""),
        time=message.time,
        envelope_id=_envelope_id(body),
        body=body,
    )


def _envelope_id(body: bytes) -> str:
    try:
        envelope = json.loads(body)
    except ValueError:
        return ""
    identifier = envelope.get("id") if isinstance(envelope, dict) else None
    return identifier if isinstance(identifier, str) else ""


def replay_headers(letter: DeadLetter) -> dict[str, str]:
    # Unique per replay, or JetStream would drop it within its duplicate window.
    fresh = f"{letter.envelope_id or 'unparseable'}.replay.{uuid.uuid4().hex}"
    return {"Nats-Msg-Id": fresh, "ce-type": letter.event_type}


class DeadLetters:
    """The dead-letter stream of one broker."""

    def __init__(self, client: Client, *, timeout: float = 5.0) -> None:
        self._client = client
        self._stream: JetStreamContext = client.jetstream(timeout=timeout)

    @classmethod
    def connect(cls, url: str, *, timeout: float = 5.0) -> _Connecting:
        return _Connecting(url, timeout)

    async def list_all(self) -> list[DeadLetter]:
        """Every dead letter, oldest first (none if no consumer ever created the stream)."""
        letters: list[DeadLetter] = []
        seq = 1
        while True:
            try:
                message = await self._stream.get_msg(
                    DEADLETTER_STREAM, seq=seq, subject=DEADLETTER_PREFIX + ">", next=True
                )
            except NotFoundError:  # no message from seq on, or no stream at all
                return letters
            letter = read_dead_letter(message)
            letters.append(letter)
            seq = letter.seq + 1

    async def get(self, seq: int) -> DeadLetter:
        try:
            return read_dead_letter(await self._stream.get_msg(DEADLETTER_STREAM, seq=seq))
        except NotFoundError:
            raise DeadLetterNotFound(f"no dead letter #{seq}") from None

    async def replay(self, seq: int) -> DeadLetter:
        """Publish dead letter `seq` again on its event subject, then delete it."""
        if seq < 1:
            raise DeadLetterNotFound(f"no dead letter #{seq}")
        letter = await self.get(seq)
        await self._stream.publish(
            event_subject(letter.event_type),
            letter.body,
            headers=replay_headers(letter),
            stream=EVENTS_STREAM,
        )
        await self._stream.delete_msg(DEADLETTER_STREAM, seq)
        return letter

    async def replay_all(self) -> list[DeadLetter]:
        """Replay every dead letter there is now, oldest first."""
        return [await self.replay(letter.seq) for letter in await self.list_all()]


async def _quiet(error: Exception) -> None:
    """The caller gets the error raised; nats-py would also print it."""


class _Connecting:
    """`async with DeadLetters.connect(url) as letters:` closes the connection after."""

    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._client: Client | None = None

    async def __aenter__(self) -> DeadLetters:
        # A one-shot tool: try each server twice, then give up (0 would mean forever).
        async with asyncio.timeout(3 * self._timeout):
            self._client = await nats.connect(
                self._url.split(","),
                connect_timeout=self._timeout,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.2,
                error_cb=_quiet,
            )
        return DeadLetters(self._client, timeout=self._timeout)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.close()

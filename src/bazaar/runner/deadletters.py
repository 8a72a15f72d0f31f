"""Dead letters, visible and replayable, on whichever broker the platform runs.

A consumer that cannot handle an event moves it to `bazaar.deadletter.<consumer>.<type>`
with the error in `x-error` (see `bazaar.platform.bus.Bus`): the stream BAZAAR_DEADLETTER
on NATS, the queue `bazaar.deadletter` on RabbitMQ. Once the cause is fixed, an operator
lists them and replays them:

    async with DeadLetters.connect(broker_url) as letters:
        for letter in await letters.list_all(): print(letter.seq, letter.error)
        await letters.replay(seq)        # or: await letters.replay_all()

Replaying publishes the original body again on its event subject (`bazaar.events.<type>`),
so every consumer of that type gets it once more; the envelope id is unchanged, so the
consumers that had handled it already find it in their inbox and do nothing. Only once the
broker has stored the new copy is the dead letter removed: a crash in between leaves
both, and replaying again is harmless. What differs per broker (reading a stream by
sequence, or taking a queue's messages and giving them back) is each transport's
(`bazaar.platform.brokers`).
"""

from __future__ import annotations

from bazaar.platform.brokers import (
    DeadLetter,
    DeadLetterNotFound,
    DeadLetterSession,
    DeadLetterStore,
    open_dead_letters,
)
from bazaar.platform.brokers.nats import read_dead_letter, replay_headers

__all__ = [
    "DeadLetter",
    "DeadLetterNotFound",
    "DeadLetterStore",
    "DeadLetters",
    "read_dead_letter",
    "replay_headers",
]


class DeadLetters:
    """`async with DeadLetters.connect(url) as letters:` the dead letters of the broker
    `url` names (nats://, amqp://, memory://), closed after."""

    @staticmethod
    def connect(url: str, *, timeout: float = 5.0) -> DeadLetterSession:
        return open_dead_letters(url, timeout=timeout)

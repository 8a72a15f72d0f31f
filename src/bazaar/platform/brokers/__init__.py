"""The brokers `Bus` runs on, one transport each, chosen once from the URL's scheme:

    nats:// tls://     NATS JetStream (the embedded default)       brokers/nats.py
    amqp:// amqps://   RabbitMQ: quorum queues, publisher confirms  brokers/rabbitmq.py
    memory://NAME      in this process, for tests                    brokers/memory.py

Kafka and Redis Streams are not offered: a broker is offered only where a real server of
it runs in CI, and no Kafka or Redis Streams server runs on these machines (Kafka has no
package here), so a transport for them would be untested.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from bazaar.platform.brokers.base import (
    DeadLetter,
    DeadLetterNotFound,
    DeadLetterSession,
    DeadLetterStore,
    Delivery,
    NoResponders,
    Outgoing,
    PublishIncomplete,
    Subscription,
    Transport,
)
from bazaar.platform.lean_imports import hidden

SCHEMES = {
    "nats": "NATS JetStream",
    "tls": "NATS JetStream over TLS",
    "amqp": "RabbitMQ",
    "amqps": "RabbitMQ over TLS",
    "memory": "in-process, for tests",
}
NOT_OFFERED = (
    "Kafka and Redis Streams are not offered: no server of them runs in CI here, "
    "and a broker is offered only where its tests run against a real server"
)

__all__ = [
    "NOT_OFFERED",
    "SCHEMES",
    "DeadLetter",
    "DeadLetterNotFound",
    "DeadLetterSession",
    "DeadLetterStore",
    "Delivery",
    "NoResponders",
    "Outgoing",
    "PublishIncomplete",
    "Subscription",
    "Transport",
    "check_broker_url",
    "make_transport",
    "open_dead_letters",
    "scheme_of",
]


def scheme_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def check_broker_url(url: str) -> str:
    """`url` if a supported broker's; ValueError naming the supported schemes otherwise.
    A NATS cluster is a comma-separated list of its servers' URLs, all nats:// or tls://."""
    parts = url.split(",")
    schemes = {scheme_of(part) for part in parts}
    unknown = schemes - SCHEMES.keys()
    if unknown or any(not part.split("://", 1)[-1].strip() or " " in part for part in parts):
        supported = ", ".join(f"{s}:// ({what})" for s, what in SCHEMES.items())
        given = ", ".join(sorted(f"{s}://" if s else "no scheme" for s in unknown)) or url
        raise ValueError(f"unsupported broker URL ({given}): use {supported}. {NOT_OFFERED}")
    if len(parts) > 1 and not schemes <= {"nats", "tls"}:
        raise ValueError("only a NATS cluster takes several comma-separated URLs")
    return url


def _without_websockets() -> AbstractContextManager[None]:
    """While the NATS broker loads: nats-py imports aiohttp in case a server is reached
    over websockets, which no URL offered here is (SCHEMES); without it every service
    process but order's (whose clients use aiohttp) is 8 MiB smaller."""
    return hidden("aiohttp")


def make_transport(url: str, service: str) -> Transport:
    """The transport of the broker `url` names (imported only when chosen)."""
    scheme = scheme_of(check_broker_url(url))
    if scheme in ("nats", "tls"):
        with _without_websockets():
            from bazaar.platform.brokers.nats import NatsTransport

        return NatsTransport(url, service)
    if scheme in ("amqp", "amqps"):
        from bazaar.platform.brokers.rabbitmq import RabbitTransport

        return RabbitTransport(url, service)
    from bazaar.platform.brokers.memory import MemoryTransport

    return MemoryTransport(url, service)


def open_dead_letters(url: str, *, timeout: float = 5.0) -> DeadLetterSession:
    """`async with open_dead_letters(url) as letters:` the dead letters of that broker."""
    scheme = scheme_of(check_broker_url(url))
    if scheme in ("nats", "tls"):
        with _without_websockets():
            from bazaar.platform.brokers.nats import NatsDeadLetters

        return NatsDeadLetters.connect(url, timeout=timeout)
    if scheme in ("amqp", "amqps"):
        from bazaar.platform.brokers.rabbitmq import RabbitDeadLetters

        return RabbitDeadLetters.connect(url, timeout=timeout)
    from bazaar.platform.brokers.memory import MemoryDeadLetters

    return MemoryDeadLetters.connect(url)

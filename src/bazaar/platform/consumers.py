"""Declaring a consumer: one call says which event a service consumes, the contract its
payload must fit, and what the service does with it (and `answer` does the same for a
request/reply subject).

    consume(bus, db, ORDER_CREATED, consumer="cart", contract=OrderCreated,
            handler=carts.remove_ordered)

The platform then, for every delivery: checks the payload against `contract` (a misfit
can never be handled, so it is dead-lettered at once with the fields that broke it);
opens the inbox's apply-once transaction and runs `handler(session, payload, event)` in
it, so the handler's writes and the inbox row commit together (a redelivered event finds
the row and has no second effect); and leaves retries and dead letters to the bus.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform import telemetry
from bazaar.platform.bus import BadRequest, Bus, PermanentError, incoming_headers
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope
from bazaar.platform.inbox import Inbox
from bazaar.platform.messagetrace import consumer_span, request_span, responder_span

Payload = TypeVar("Payload", bound=BaseModel)
Handler = Callable[[AsyncSession, Payload, Envelope], Awaitable[None]]


class ContractBroken(PermanentError, ValueError):
    """The event's data does not fit its contract: no retry can change that."""


def consume(
    bus: Bus,
    db: Database,
    event_type: str,
    *,
    consumer: str,
    contract: type[Payload],
    handler: Handler[Payload],
) -> None:
    """Run `handler` once per `event_type` event whose data fits `contract`. `consumer`
    names the durable subscription (replicas of a service share it) and the inbox.
    Call it before the bus starts."""
    inbox = Inbox(db, consumer)

    async def on_event(event: Envelope) -> None:
        # The producer's trace goes on here: the handler's log lines, queries and calls
        # are in it (a failure too, recorded on the span).
        with consumer_span(event, consumer):
            if event.type != event_type:  # published on the wrong subject
                raise ContractBroken(f"event {event.id} is a {event.type}, not a {event_type}")
            payload = parse(contract, event)

            async def apply(session: AsyncSession, _: Envelope) -> None:
                await handler(session, payload, event)

            await inbox.handle_once(event, apply)

    bus.on_event(event_type, consumer, on_event)


def parse(contract: type[Payload], event: Envelope) -> Payload:
    """`event.data` as a `contract`; `ContractBroken` naming each field that breaks it."""
    try:
        return contract.model_validate(event.data)
    except ValidationError as exc:
        raise ContractBroken(f"{event.type} {event.id}: {_describe(exc)}") from None


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}" for e in error.errors()
    )


Request = TypeVar("Request", bound=BaseModel)
Responder = Callable[[Request], Awaitable[BaseModel]]


def answer(
    bus: Bus, subject: str, *, contract: type[Request], responder: Responder[Request]
) -> None:
    """Answer request/reply calls on `subject`: a request that does not fit `contract` gets
    a `bad_request` error reply naming the fields; the responder's reply model is sent as
    JSON. Call it before the bus starts."""

    async def on_request(body: dict[str, Any]) -> dict[str, Any]:
        # The caller's trace goes on here: `ask` sent its context in the headers.
        with responder_span(subject, incoming_headers()):
            try:
                request = contract.model_validate(body)
            except ValidationError as exc:
                raise BadRequest(_describe(exc)) from None
            reply = await responder(request)
            return reply.model_dump(mode="json")

    bus.on_request(subject, on_request)


async def ask(bus: Bus, subject: str, request: BaseModel, *, timeout: float) -> Any:  # noqa: ASYNC109
    """The caller's side of `answer`: send `request` on `subject`, return the reply's `ok`
    part (`RemoteError` as `Bus.request` raises it). The call is a CLIENT span, whose
    context the request's headers carry to the responder."""
    with request_span(subject):
        headers = telemetry.trace_context() or None
        payload = request.model_dump(mode="json")
        return await bus.request(subject, payload, timeout=timeout, headers=headers)

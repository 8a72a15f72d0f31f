"""The real neighbours: inventory over gRPC, payment and cart over HTTP, catalog prices
over the bus. Each turns its transport's failures into `NeighbourUnavailable` and its
answers into the ports' plain values; nothing else leaks out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import quote as url_quote

import grpc
import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bazaar.contracts.generated import inventory_pb2, inventory_pb2_grpc
from bazaar.contracts.quotes import QUOTE_SUBJECT, QuoteReply, QuoteRequest
from bazaar.platform.bus import Bus, RemoteError
from bazaar.platform.clients import ResilientClient, UpstreamError
from bazaar.platform.consumers import ask
from bazaar.platform.grpc import create_channel
from bazaar.platform.logs import get_logger
from bazaar.services.order.domain import CartLine, Quote
from bazaar.services.order.ports import (
    CartsUnavailable,
    Charge,
    Commitment,
    InventoryUnavailable,
    PaymentsUnavailable,
    PricingRefused,
    PricingUnavailable,
    Quotes,
    Refund,
    Release,
    Reservation,
)

log = get_logger(__name__)

ProductId = Annotated[str, Field(min_length=1, max_length=100)]


# --- inventory (gRPC) -------------------------------------------------------------------

State = inventory_pb2.ReservationStatus.State
# Codes that say "this request will never succeed", as opposed to "not now".
PERMANENT = frozenset({grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT})


class GrpcInventory:
    """The inventory service through its generated stub. The channel is opened on first
    use (inside the running loop) and retries UNAVAILABLE within the per-call timeout."""

    def __init__(self, address: str, *, timeout: float = 2.0) -> None:
        self._address = address
        self._timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._stub: inventory_pb2_grpc.InventoryStub | None = None

    def _inventory(self) -> inventory_pb2_grpc.InventoryStub:
        if self._stub is None:
            self._channel = create_channel(self._address)
            self._stub = inventory_pb2_grpc.InventoryStub(self._channel)
        return self._stub

    async def aclose(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def reserve(self, order_id: str, lines: Sequence[CartLine]) -> Reservation:
        request = inventory_pb2.ReserveRequest(
            order_id=order_id,
            lines=[inventory_pb2.Line(product_id=line.product_id, qty=line.qty) for line in lines],
        )
        try:
            answer = await self._inventory().Reserve(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in PERMANENT:
                # A product inventory does not stock (or lines it refuses) cannot be
                # reserved however often we ask: that is out of stock.
                log.warning("reserve refused", order_id=order_id, error=exc.details())
                return Reservation.OUT_OF_STOCK
            raise _unavailable("Reserve", exc) from exc
        if answer.outcome == inventory_pb2.ReserveResponse.RESERVED:
            return Reservation.RESERVED
        if answer.outcome == inventory_pb2.ReserveResponse.OUT_OF_STOCK:
            return Reservation.OUT_OF_STOCK
        raise InventoryUnavailable(f"Reserve answered outcome {answer.outcome}")

    async def commit(self, order_id: str) -> Commitment:
        try:
            answer = await self._inventory().Commit(
                inventory_pb2.OrderRef(order_id=order_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                return Commitment.NOT_RESERVED
            raise _unavailable("Commit", exc) from exc
        if answer.state == State.COMMITTED:
            return Commitment.COMMITTED
        if answer.state in (State.RELEASED, State.NONE):
            return Commitment.NOT_RESERVED
        raise InventoryUnavailable(f"Commit answered state {answer.state}")

    async def release(self, order_id: str) -> Release:
        try:
            answer = await self._inventory().Release(
                inventory_pb2.OrderRef(order_id=order_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                return Release.ALREADY_COMMITTED
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return Release.RELEASED  # nothing was ever reserved
            raise _unavailable("Release", exc) from exc
        if answer.state in (State.RELEASED, State.NONE):
            return Release.RELEASED
        if answer.state == State.COMMITTED:
            return Release.ALREADY_COMMITTED
        raise InventoryUnavailable(f"Release answered state {answer.state}")


def _unavailable(method: str, exc: grpc.aio.AioRpcError) -> InventoryUnavailable:
    return InventoryUnavailable(f"inventory {method}: {exc.code().name}: {exc.details()}")


# --- payment (HTTP) ---------------------------------------------------------------------


class _PaymentAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: str


class HttpPayments:
    """The payment service; every call is keyed by the order id, so it may be retried."""

    def __init__(self, client: ResilientClient) -> None:
        self._client = client

    async def charge(self, order_id: str, amount_cents: int) -> Charge:
        answer = await self._call(
            "POST",
            "/internal/payments",
            json={"order_id": order_id, "amount_cents": amount_cents},
            headers={"Idempotency-Key": order_id},
        )
        if answer.status_code != 201:
            raise PaymentsUnavailable(f"charge answered {answer.status_code}: {_detail(answer)}")
        status = _status(answer)
        if status == "captured":
            return Charge.CAPTURED
        if status == "declined":
            return Charge.DECLINED
        raise PaymentsUnavailable(f"charge answered status {status!r}")

    async def refund(self, order_id: str, amount_cents: int) -> Refund:
        """Cancel the order's payment. The payment service refunds a capture; if nothing was
        captured it voids the charge, so that a charge request still on its way (one this
        order gave up waiting for) takes nothing when it lands. Voiding needs no processor:
        an order never charged is cancelled during a processor outage too."""
        path = f"/internal/payments/{url_quote(order_id, safe='')}/cancel"
        answer = await self._call("POST", path, json={"amount_cents": amount_cents})
        status = _status(answer) if answer.status_code == 200 else None
        if status == "refunded":
            return Refund.REFUNDED
        if status in ("voided", "declined"):
            return Refund.NOTHING_TO_REFUND
        raise PaymentsUnavailable(f"cancel answered {answer.status_code}: {_detail(answer)}")

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, path, idempotent=True, **kwargs)
        except (UpstreamError, httpx.HTTPError) as exc:
            raise PaymentsUnavailable(str(exc)) from exc


def _status(answer: httpx.Response) -> str | None:
    try:
        return _PaymentAnswer.model_validate_json(answer.content).status
    except ValidationError:
        return None


def _detail(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:200]
    return str(body.get("detail", body))[:200] if isinstance(body, dict) else str(body)[:200]


# --- cart (HTTP) ------------------------------------------------------------------------


class _CartLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    product_id: ProductId
    qty: int = Field(ge=1)


class _Cart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    items: list[_CartLine]


class HttpCarts:
    def __init__(self, client: ResilientClient) -> None:
        self._client = client

    async def lines(self, user_id: str) -> list[CartLine]:
        try:
            answer = await self._client.request(
                "GET", f"/internal/carts/{url_quote(user_id, safe='')}"
            )
        except (UpstreamError, httpx.HTTPError) as exc:
            raise CartsUnavailable(f"cart service: {exc}") from exc
        if answer.status_code == 404:  # a user who never had a cart
            return []
        if answer.status_code != 200:
            raise CartsUnavailable(f"cart service answered {answer.status_code}")
        try:
            cart = _Cart.model_validate_json(answer.content)
        except ValidationError as exc:
            raise CartsUnavailable(f"cart service answered an unreadable cart: {exc}") from exc
        return [CartLine(line.product_id, line.qty) for line in cart.items]


# --- catalog prices (bus request/reply) -------------------------------------------------


class BusPricing:
    """Prices by request/reply on `bazaar.rpc.catalog.quote` (contracts/README.md)."""

    def __init__(self, bus: Bus, *, timeout: float = 2.0) -> None:
        self._bus = bus
        self._timeout = timeout

    async def quote(self, product_ids: Sequence[str]) -> Quotes:
        try:
            request = QuoteRequest(product_ids=list(product_ids))
        except ValidationError as exc:  # the catalog would refuse it just the same
            raise PricingRefused(f"no quote can be asked for these products: {exc}") from exc
        try:
            reply = await ask(self._bus, QUOTE_SUBJECT, request, timeout=self._timeout)
        except RemoteError as exc:
            if exc.code == "bad_request":
                raise PricingRefused(exc.detail) from exc
            raise PricingUnavailable(f"catalog: {exc}") from exc
        except Exception as exc:  # a reply that is not even JSON
            raise PricingUnavailable(f"catalog answered garbage: {exc!r}") from exc
        try:
            answer = QuoteReply.model_validate(reply)
        except ValidationError as exc:
            raise PricingUnavailable(f"catalog answered an unreadable quote: {exc}") from exc
        by_product = {
            q.product_id: Quote(q.product_id, q.name, q.price_cents) for q in answer.quotes
        }
        return Quotes(by_product=by_product, missing=answer.missing)

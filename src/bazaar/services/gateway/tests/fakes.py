"""Fake upstreams for the gateway's tests: an echo app that records what reaches it, and a
small in-memory shop (auth, catalog, cart, order) that speaks the public API's contract."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bazaar.contracts.generated import inventory_pb2, inventory_pb2_grpc
from bazaar.platform.problems import PROBLEM_JSON, problem_body
from bazaar.platform.tokens import InvalidToken, Principal, bearer_token
from bazaar.testing import TokenMinter

UPSTREAMS = ("auth", "catalog", "cart", "order")
SHOP_URL = "http://shop.test"
# Nothing listens there: a gRPC channel to it fails fast, and is never dialled unless used.
NO_INVENTORY = "127.0.0.1:9"
# The `make_client` fixture: (transport, *, settings_=None) -> a started gateway's client.
ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def problem(status: int, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


@dataclass
class Seen:
    method: str
    path: str
    raw_path: bytes
    query: bytes
    headers: dict[str, str]
    body: bytes


class EchoUpstream:
    """An ASGI app that records every request; answers with `answer(request)` (by default
    200 JSON naming itself and what it saw)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[Seen] = []
        self.answer: Callable[[Request], Response] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # served by uvicorn: nothing to start or stop
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        request = Request(scope, receive)
        body = await request.body()
        self.seen.append(
            Seen(
                method=request.method,
                path=request.url.path,
                raw_path=scope.get("raw_path", b""),
                query=scope.get("query_string", b""),
                headers=dict(request.headers),
                body=body,
            )
        )
        if self.answer is not None:
            response = self.answer(request)
        else:
            response = JSONResponse({"upstream": self.name, "path": request.url.path})
        await response(scope, receive, send)


# -- an in-memory shop -----------------------------------------------------------------


@dataclass
class FakeShop:
    """Enough of auth, catalog, cart and order for the storefront's pages."""

    minter: TokenMinter
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    carts: dict[str, dict[str, int]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkout_keys: dict[str, str] = field(default_factory=dict)
    catalog_queries: list[dict[str, str]] = field(default_factory=list)

    def add_product(
        self, name: str, price_cents: int, stock: int = 10, category: str = "misc"
    ) -> str:
        product_id = f"p{len(self.products) + 1}"
        self.products[product_id] = {
            "id": product_id,
            "name": name,
            "description": f"A fine {name}.",
            "category": category,
            "price_cents": price_cents,
            "stock": stock,
            "image_url": None,
        }
        return product_id

    def add_user(self, email: str, password: str, *, admin: bool = False) -> dict[str, Any]:
        roles = ["customer", "admin"] if admin else ["customer"]
        user = {"id": uuid.uuid4().hex, "email": email, "name": email.split("@")[0], "roles": roles}
        self.users[email] = {**user, "password": password}
        return user

    def token_for(self, email: str) -> str:
        user = self.users[email]
        return self.minter.token(user["id"], email=email, roles=user["roles"])

    def apps(self) -> dict[str, Starlette]:
        return {
            "auth": Starlette(
                routes=[
                    Route("/api/auth/signup", self._signup, methods=["POST"]),
                    Route("/api/auth/login", self._login, methods=["POST"]),
                    Route("/healthz", _healthy),
                ]
            ),
            "catalog": Starlette(
                routes=[
                    Route("/api/products", self._list_products),
                    Route("/api/products/{product_id}", self._get_product),
                    Route("/api/categories", self._categories),
                    Route("/healthz", _healthy),
                ]
            ),
            "cart": Starlette(
                routes=[
                    Route("/api/cart", self._get_cart),
                    Route("/api/cart/items", self._add_item, methods=["POST"]),
                    Route(
                        "/api/cart/items/{product_id}",
                        self._change_item,
                        methods=["PATCH", "DELETE"],
                    ),
                    Route("/healthz", _healthy),
                ]
            ),
            "order": Starlette(
                routes=[
                    Route("/api/checkout", self._checkout, methods=["POST"]),
                    Route("/api/orders", self._list_orders),
                    Route("/api/orders/{order_id}", self._get_order),
                    Route("/healthz", _healthy),
                ]
            ),
        }

    # auth

    def _answer_token(self, email: str, status: int) -> JSONResponse:
        user = {k: v for k, v in self.users[email].items() if k != "password"}
        body = {"access_token": self.token_for(email), "token_type": "bearer", "user": user}
        return JSONResponse(body, status_code=status)

    async def _signup(self, request: Request) -> Response:
        body = await request.json()
        if len(body.get("password", "")) < 8:
            return problem(422, "password: String should have at least 8 characters")
        if body["email"] in self.users:
            return problem(409, "email already registered")
        self.add_user(body["email"], body["password"])
        return self._answer_token(body["email"], 201)

    async def _login(self, request: Request) -> Response:
        body = await request.json()
        user = self.users.get(body.get("email", ""))
        if user is None or user["password"] != body.get("password"):
            return problem(401, "bad credentials", **{"WWW-Authenticate": "Bearer"})
        return self._answer_token(body["email"], 200)

    # catalog

    async def _list_products(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.catalog_queries.append(params)
        q = params.get("q", "").lower()
        category = params.get("category", "")
        page, size = int(params.get("page", 1)), int(params.get("page_size", 20))
        found = [
            p
            for p in self.products.values()
            if q in p["name"].lower() and (not category or p["category"] == category)
        ]
        items = found[(page - 1) * size : page * size]
        return JSONResponse({"items": items, "total": len(found), "page": page, "page_size": size})

    async def _get_product(self, request: Request) -> Response:
        product = self.products.get(request.path_params["product_id"])
        if product is None:
            return problem(404, "no such product")
        return JSONResponse(product)

    async def _categories(self, request: Request) -> Response:
        slugs = sorted({p["category"] for p in self.products.values()})
        return JSONResponse({"items": [{"slug": s, "name": s.title()} for s in slugs]})

    # cart

    async def _caller(self, request: Request) -> Principal:
        return await self.minter.verifier().verify(bearer_token(request))

    def _cart_body(self, user_id: str) -> dict[str, Any]:
        lines = [
            {
                "product_id": pid,
                "name": self.products[pid]["name"],
                "unit_price_cents": self.products[pid]["price_cents"],
                "qty": qty,
                "line_total_cents": self.products[pid]["price_cents"] * qty,
            }
            for pid, qty in self.carts.get(user_id, {}).items()
        ]
        return {
            "user_id": user_id,
            "items": lines,
            "total_cents": sum(line["line_total_cents"] for line in lines),
            "item_count": sum(line["qty"] for line in lines),
        }

    async def _get_cart(self, request: Request) -> Response:
        try:
            user = await self._caller(request)
        except InvalidToken:
            return problem(401, "invalid token")
        return JSONResponse(self._cart_body(user.user_id))

    async def _add_item(self, request: Request) -> Response:
        user = await self._caller(request)
        body = await request.json()
        if body["product_id"] not in self.products:
            return problem(404, "no such product")
        cart = self.carts.setdefault(user.user_id, {})
        cart[body["product_id"]] = cart.get(body["product_id"], 0) + body["qty"]
        return JSONResponse(self._cart_body(user.user_id))

    async def _change_item(self, request: Request) -> Response:
        user = await self._caller(request)
        cart = self.carts.setdefault(user.user_id, {})
        product_id = request.path_params["product_id"]
        if product_id not in cart:
            return problem(404, "not in the cart")
        if request.method == "DELETE":
            del cart[product_id]
        else:
            cart[product_id] = (await request.json())["qty"]
        return JSONResponse(self._cart_body(user.user_id))

    # order

    async def _checkout(self, request: Request) -> Response:
        user = await self._caller(request)
        key = request.headers.get("idempotency-key", "")
        if key in self.checkout_keys:
            order = self.orders[self.checkout_keys[key]]
            return JSONResponse({"order_id": order["id"], "status": order["status"]}, 201)
        cart = self._cart_body(user.user_id)
        if not cart["items"]:
            return problem(422, "the cart is empty")
        order_id = uuid.uuid4().hex
        self.orders[order_id] = {
            "id": order_id,
            "user_id": user.user_id,
            "status": "pending",
            "reason": None,
            "items": [
                {k: line[k] for k in ("product_id", "name", "qty", "unit_price_cents")}
                for line in cart["items"]
            ],
            "total_cents": cart["total_cents"],
            "created_at": "2024-05-01T12:30:00+00:00",
            "updated_at": "2024-05-01T12:30:00+00:00",
        }
        self.carts[user.user_id] = {}
        if key:
            self.checkout_keys[key] = order_id
        return JSONResponse({"order_id": order_id, "status": "pending"}, 201)

    async def _list_orders(self, request: Request) -> Response:
        user = await self._caller(request)
        mine = [o for o in self.orders.values() if o["user_id"] == user.user_id]
        return JSONResponse({"items": mine})

    async def _get_order(self, request: Request) -> Response:
        user = await self._caller(request)
        order = self.orders.get(request.path_params["order_id"])
        if order is None or order["user_id"] != user.user_id:
            return problem(404, "no such order")
        return JSONResponse(order)


async def _healthy(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


# -- a fake inventory over gRPC --------------------------------------------------------


class FakeInventory(inventory_pb2_grpc.InventoryServicer):
    """Stock on hand per product; AdjustStock idempotent by request id."""

    def __init__(self) -> None:
        self.on_hand: dict[str, int] = {"p1": 5}
        self.reserved: dict[str, int] = {"p1": 2}
        self.version = 0
        self.applied: dict[str, inventory_pb2.StockLevel] = {}

    def level(self, product_id: str) -> inventory_pb2.StockLevel:
        on_hand, reserved = self.on_hand[product_id], self.reserved.get(product_id, 0)
        return inventory_pb2.StockLevel(
            product_id=product_id,
            on_hand=on_hand,
            reserved=reserved,
            available=on_hand - reserved,
            version=self.version,
        )

    async def AdjustStock(
        self, request: inventory_pb2.AdjustStockRequest, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.StockLevel:
        if request.request_id in self.applied:
            return self.applied[request.request_id]
        if request.product_id not in self.on_hand:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no product {request.product_id}")
        new = self.on_hand[request.product_id] + request.delta
        if new < self.reserved.get(request.product_id, 0):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "below the reserved units")
        self.on_hand[request.product_id] = new
        self.version += 1
        self.applied[request.request_id] = self.level(request.product_id)
        return self.applied[request.request_id]

    async def GetStock(
        self, request: inventory_pb2.GetStockRequest, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.GetStockResponse:
        ids = list(request.product_ids) or sorted(self.on_hand)
        return inventory_pb2.GetStockResponse(
            levels=[self.level(pid) for pid in ids if pid in self.on_hand]
        )

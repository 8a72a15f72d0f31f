"""The public API as data: `PUBLIC_API` has one row per operation (method, path, the
service that owns it, response and body schemas, the problems it documents, who may call
it), and `public_api` is the one loop that registers them. Every route forwards the
request unchanged to its owner; a row names what the gateway does first only where it
does more than forward (checkout's rate limit).

Routes are explicit (no catch-all) so that nothing but the public API ever reaches a
service through the gateway (`/internal/*` and unknown paths are 404 here), and so that
the gateway's OpenAPI document describes the whole public API in one place.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.responses import Response

from bazaar.services.gateway.handlers import GatewayService
from bazaar.services.gateway.schemas import (
    BODY,
    DOCUMENTED_MODELS,
    PRODUCT_ID_PATTERN,
    UPSTREAM,
    Cart,
    CategoryList,
    CheckoutResponse,
    Order,
    OrderList,
    Product,
    ProductPage,
    TokenResponse,
    User,
    order_event_schema,
    partial_schema,
    problem_responses,
)

Endpoint = Callable[..., Awaitable[Response]]
# What the gateway does itself before it forwards a request.
Step = Callable[[Request, GatewayService], Awaitable[None]]

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
# The document's tag of each owner's operations.
TAGS = {"auth": "auth", "catalog": "catalog", "cart": "cart", "order": "orders"}
REQUEST = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)


class Auth(Enum):
    """Who may call an operation (its owner checks)."""

    ANYONE = "anyone"
    USER = "user"  # a bearer token: 401 without a valid one
    ADMIN = "admin"  # naming a user with the admin role: 403 for anyone else

    @property
    def problems(self) -> tuple[int, ...]:
        """The statuses an operation documents for callers who fail the check."""
        # Not the members' values: Python 3.11.2's Enum turns a member valued () into an
        # object() (fixed in 3.11.3), and Debian 12 ships 3.11.2.
        return {"anyone": (), "user": (401,), "admin": (401, 403)}[self.value]


@dataclass(frozen=True)
class EventStream:
    """A response of server-sent events; it may stay silent for `stream_timeout`."""

    summary: str
    description: str
    event_schema: dict[str, Any]

    def documented(self, problems: dict[int | str, dict[str, Any]]) -> dict[str, Any]:
        ok = {
            "description": self.description,
            "content": {"text/event-stream": {"schema": self.event_schema}},
        }
        return {
            "summary": self.summary,
            "response_class": Response,
            "responses": {200: ok, **problems},
        }


@dataclass(frozen=True)
class PublicRoute:
    """One operation of the public API: who answers it and what the document says of it."""

    method: str
    path: str
    owner: str  # the upstream the request is forwarded to
    name: str  # the operation's id and summary
    response: type[BaseModel] | EventStream
    status: int = 200
    auth: Auth = Auth.ANYONE
    body: str | None = None  # the schema of the JSON body, forwarded without parsing
    problems: tuple[int, ...] = ()  # the owner's own; auth's, a body's and UPSTREAM are added
    # A function never called: its signature declares the path and query parameters the
    # gateway checks itself (FastAPI validates and documents them).
    parameters: Callable[..., None] | None = None
    idempotency_key: bool = False  # the client may send one; the owner reads it
    before: Step | None = None

    def signature(self) -> inspect.Signature:
        """The endpoint's, as FastAPI reads it: the request and the declared parameters."""
        declared = (
            inspect.signature(self.parameters, eval_str=True).parameters.values()
            if self.parameters
            else ()
        )
        return inspect.Signature([REQUEST, *declared], return_annotation=Response)

    def documented(self) -> dict[str, Any]:
        """What FastAPI writes the operation from."""
        tags = [TAGS[self.owner], *(["admin"] if self.auth is Auth.ADMIN else [])]
        problems = problem_responses(
            *self.auth.problems, *self.problems, *(BODY if self.body else ()), *UPSTREAM
        )
        common = {"tags": tags, "status_code": self.status, "openapi_extra": self._extra()}
        if isinstance(self.response, EventStream):
            return {**common, **self.response.documented(problems)}
        return {**common, "response_model": self.response, "responses": problems}

    def _extra(self) -> dict[str, Any] | None:
        """What the document says that FastAPI cannot see: the forwarded body and headers."""
        extra: dict[str, Any] = {}
        if self.body:
            extra.update(json_body(self.body))
        if self.idempotency_key:
            extra.update(idempotency_header())
        if self.auth is not Auth.ANYONE:
            extra["security"] = BEARER
        return extra or None


def json_body(schema_name: str) -> dict[str, Any]:
    """OpenAPI for a JSON body the gateway forwards without parsing (the owning service
    validates it; a second validation here could only disagree with it)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
            },
        }
    }


def idempotency_header() -> dict[str, Any]:
    return {
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                "description": "The same key twice gives the same order.",
            }
        ]
    }


# -- what the gateway checks or does itself ----------------------------------------------

ProductIdPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=PRODUCT_ID_PATTERN, description="A product id")
]


def product_search(
    q: Annotated[
        str | None, Query(max_length=200, description="Text search in name and description")
    ] = None,
    category: Annotated[str | None, Query(max_length=64, description="A category slug")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based")] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> None:
    """The product list's query."""


def a_product(product_id: str) -> None:
    """Any id: catalog answers 404 for one it does not know."""


def a_cart_line(product_id: ProductIdPath) -> None:
    """A product id as cart takes it."""


def an_order(order_id: str) -> None:
    """Any id: order answers 404 for one that is not the caller's."""


async def count_checkout(request: Request, gateway: GatewayService) -> None:
    """A checkout counts against its caller's budget (429 past it) before it is forwarded;
    the storefront's checkout form counts against the same budget."""
    await gateway.checkouts.count_bearer(request.headers.get("authorization", ""))


ORDER_EVENTS = EventStream(
    summary="Server-sent events: one `data: Order` per status change, closed once final",
    description="The order now and at each status change",
    event_schema=order_event_schema(),
)
USER, ADMIN = Auth.USER, Auth.ADMIN

# -- the public API ----------------------------------------------------------------------
# PublicRoute(method, path, owner, name, response, ...): see PublicRoute for the rest.

PUBLIC_API = (
    # auth: 415, it takes nothing but `Content-Type: application/json`.
    PublicRoute("POST", "/api/auth/signup", "auth", "signup", TokenResponse, status=201,
                body="SignupRequest", problems=(409, 415, 429)),
    PublicRoute("POST", "/api/auth/login", "auth", "login", TokenResponse,
                body="LoginRequest", problems=(401, 415, 429)),
    PublicRoute("GET", "/api/auth/me", "auth", "me", User, auth=USER),
    # catalog
    PublicRoute("GET", "/api/products", "catalog", "list_products", ProductPage,
                problems=(422,), parameters=product_search),
    PublicRoute("GET", "/api/products/{product_id}", "catalog", "get_product", Product,
                problems=(404,), parameters=a_product),
    PublicRoute("POST", "/api/products", "catalog", "create_product", Product, status=201,
                auth=ADMIN, body="ProductCreate"),
    PublicRoute("PATCH", "/api/products/{product_id}", "catalog", "update_product", Product,
                auth=ADMIN, body="ProductUpdate", problems=(404,), parameters=a_product),
    PublicRoute("GET", "/api/categories", "catalog", "list_categories", CategoryList),
    # cart: 409, two writes to one cart raced and this one lost; 502/503, catalog could not
    # price it.
    PublicRoute("GET", "/api/cart", "cart", "get_cart", Cart, auth=USER, problems=(502,)),
    PublicRoute("POST", "/api/cart/items", "cart", "add_cart_item", Cart,
                auth=USER, body="CartItemAdd", problems=(404, 409, 502)),
    PublicRoute("PATCH", "/api/cart/items/{product_id}", "cart", "set_cart_item", Cart,
                auth=USER, body="CartItemUpdate", problems=(404, 409, 502), parameters=a_cart_line),
    PublicRoute("DELETE", "/api/cart/items/{product_id}", "cart", "remove_cart_item", Cart,
                auth=USER, problems=(404, 409, 502), parameters=a_cart_line),
    # orders
    PublicRoute("POST", "/api/checkout", "order", "checkout", CheckoutResponse, status=201,
                auth=USER, problems=(413, 422, 429), idempotency_key=True, before=count_checkout),
    PublicRoute("GET", "/api/orders", "order", "list_orders", OrderList, auth=USER),
    PublicRoute("GET", "/api/orders/{order_id}", "order", "get_order", Order,
                auth=USER, problems=(404,), parameters=an_order),
    PublicRoute("GET", "/api/orders/{order_id}/events", "order", "order_events", ORDER_EVENTS,
                auth=USER, problems=(404,), parameters=an_order),
)  # fmt: skip


def public_api(gateway: GatewayService) -> APIRouter:
    """Every route of `PUBLIC_API`, bound to `gateway` as it is registered: the forwarding
    path asks FastAPI for nothing per request (a `uses()` dependency would cost ~10 µs a
    request, some 7% of the gateway's time forwarding one)."""
    router = APIRouter()
    for route in PUBLIC_API:
        router.add_api_route(
            route.path,
            _forwarding(route, gateway),
            methods=[route.method],
            name=route.name,
            **route.documented(),
        )
    return router


def _forwarding(route: PublicRoute, gateway: GatewayService) -> Endpoint:
    forward, owner, before = gateway.upstreams.forward, route.owner, route.before
    long_lived = isinstance(route.response, EventStream)

    # No docstring: FastAPI would make it every operation's description.
    async def endpoint(request: Request, **_checked: object) -> Response:
        if before is not None:
            await before(request, gateway)
        return await forward(request, owner, long_lived=long_lived)

    endpoint.__signature__ = route.signature()  # type: ignore[attr-defined]
    return endpoint


# -- the OpenAPI document --------------------------------------------------------------


def install_openapi(app: FastAPI) -> None:
    """Add the forwarded request bodies and the bearer scheme to the generated document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            _, definitions = models_json_schema(
                [(model, "validation") for model in DOCUMENTED_MODELS],
                ref_template="#/components/schemas/{model}",
            )
            components = document.setdefault("components", {})
            schemas = components.setdefault("schemas", {})
            for name, schema in definitions.get("$defs", {}).items():
                schemas.setdefault(name, schema)
            schemas["ProductUpdate"] = partial_schema(schemas["ProductCreate"])
            _problems_for_validation_errors(document)
            components.setdefault("securitySchemes", {})["bearer"] = {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
            }
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problems_for_validation_errors(document: dict[str, Any]) -> None:
    """FastAPI documents its own 422 shape; the platform answers problem+json instead."""
    problem = problem_responses(422)[422]
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "422" in responses and "application/json" in responses["422"].get("content", {}):
                responses["422"] = problem
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)

"""The public API: each public path declared once, each forwarded unchanged to its owner.

Routes are explicit (no catch-all) so that nothing but the public API ever reaches a
service through the gateway (`/internal/*` and unknown paths are 404 here), and so that
the gateway's OpenAPI document describes the whole public API in one place.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema
from starlette.responses import Response

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
from bazaar.services.gateway.throttling import count_checkout
from bazaar.services.gateway.upstreams import forward

router = APIRouter()

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
ProductIdPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=PRODUCT_ID_PATTERN, description="A product id")
]


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


# -- auth ------------------------------------------------------------------------------


@router.post(
    "/api/auth/signup",
    tags=["auth"],
    status_code=201,
    response_model=TokenResponse,
    openapi_extra=json_body("SignupRequest"),
    # 415: auth takes nothing but `Content-Type: application/json`.
    responses=problem_responses(409, 415, 429, *BODY, *UPSTREAM),
)
async def signup(request: Request) -> Response:
    return await forward(request, "auth")


@router.post(
    "/api/auth/login",
    tags=["auth"],
    response_model=TokenResponse,
    openapi_extra=json_body("LoginRequest"),
    responses=problem_responses(401, 415, 429, *BODY, *UPSTREAM),
)
async def login(request: Request) -> Response:
    return await forward(request, "auth")


@router.get(
    "/api/auth/me",
    tags=["auth"],
    response_model=User,
    openapi_extra={"security": BEARER},
    responses=problem_responses(401, *UPSTREAM),
)
async def me(request: Request) -> Response:
    return await forward(request, "auth")


# -- catalog ---------------------------------------------------------------------------


@router.get(
    "/api/products",
    tags=["catalog"],
    response_model=ProductPage,
    responses=problem_responses(422, *UPSTREAM),
)
async def list_products(
    request: Request,
    q: Annotated[
        str | None, Query(max_length=200, description="Text search in name and description")
    ] = None,
    category: Annotated[str | None, Query(max_length=64, description="A category slug")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="1-based")] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    return await forward(request, "catalog")


@router.get(
    "/api/products/{product_id}",
    tags=["catalog"],
    response_model=Product,
    responses=problem_responses(404, *UPSTREAM),
)
async def get_product(request: Request, product_id: str) -> Response:
    return await forward(request, "catalog")


@router.post(
    "/api/products",
    tags=["catalog", "admin"],
    status_code=201,
    response_model=Product,
    openapi_extra={**json_body("ProductCreate"), "security": BEARER},
    responses=problem_responses(401, 403, *BODY, *UPSTREAM),
)
async def create_product(request: Request) -> Response:
    return await forward(request, "catalog")


@router.patch(
    "/api/products/{product_id}",
    tags=["catalog", "admin"],
    response_model=Product,
    openapi_extra={**json_body("ProductUpdate"), "security": BEARER},
    responses=problem_responses(401, 403, 404, *BODY, *UPSTREAM),
)
async def update_product(request: Request, product_id: str) -> Response:
    return await forward(request, "catalog")


@router.get(
    "/api/categories",
    tags=["catalog"],
    response_model=CategoryList,
    responses=problem_responses(*UPSTREAM),
)
async def list_categories(request: Request) -> Response:
    return await forward(request, "catalog")


# -- cart ------------------------------------------------------------------------------
# 409: two writes to one cart raced and this one lost; 502/503: catalog could not price it.


@router.get(
    "/api/cart",
    tags=["cart"],
    response_model=Cart,
    openapi_extra={"security": BEARER},
    responses=problem_responses(401, 502, *UPSTREAM),
)
async def get_cart(request: Request) -> Response:
    return await forward(request, "cart")


@router.post(
    "/api/cart/items",
    tags=["cart"],
    response_model=Cart,
    openapi_extra={**json_body("CartItemAdd"), "security": BEARER},
    responses=problem_responses(401, 404, 409, 502, *BODY, *UPSTREAM),
)
async def add_cart_item(request: Request) -> Response:
    return await forward(request, "cart")


@router.patch(
    "/api/cart/items/{product_id}",
    tags=["cart"],
    response_model=Cart,
    openapi_extra={**json_body("CartItemUpdate"), "security": BEARER},
    responses=problem_responses(401, 404, 409, 502, *BODY, *UPSTREAM),
)
async def set_cart_item(request: Request, product_id: ProductIdPath) -> Response:
    return await forward(request, "cart")


@router.delete(
    "/api/cart/items/{product_id}",
    tags=["cart"],
    response_model=Cart,
    openapi_extra={"security": BEARER},
    responses=problem_responses(401, 404, 409, 502, *UPSTREAM),
)
async def remove_cart_item(request: Request, product_id: ProductIdPath) -> Response:
    return await forward(request, "cart")


# -- orders ----------------------------------------------------------------------------


@router.post(
    "/api/checkout",
    tags=["orders"],
    status_code=201,
    response_model=CheckoutResponse,
    openapi_extra={**idempotency_header(), "security": BEARER},
    responses=problem_responses(401, 413, 422, 429, *UPSTREAM),
)
async def checkout(request: Request) -> Response:
    await count_checkout(request)
    return await forward(request, "order")


@router.get(
    "/api/orders",
    tags=["orders"],
    response_model=OrderList,
    openapi_extra={"security": BEARER},
    responses=problem_responses(401, *UPSTREAM),
)
async def list_orders(request: Request) -> Response:
    return await forward(request, "order")


@router.get(
    "/api/orders/{order_id}",
    tags=["orders"],
    response_model=Order,
    openapi_extra={"security": BEARER},
    responses=problem_responses(401, 404, *UPSTREAM),
)
async def get_order(request: Request, order_id: str) -> Response:
    return await forward(request, "order")


@router.get(
    "/api/orders/{order_id}/events",
    tags=["orders"],
    summary="Server-sent events: one `data: Order` per status change, closed once final",
    response_class=Response,
    openapi_extra={"security": BEARER},
    responses={
        200: {
            "description": "The order now and at each status change",
            "content": {"text/event-stream": {"schema": order_event_schema()}},
        },
        **problem_responses(401, 404, *UPSTREAM),
    },
)
async def order_events(request: Request, order_id: str) -> Response:
    return await forward(request, "order", long_lived=True)


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

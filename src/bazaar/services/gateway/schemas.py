"""The public API's shapes, for the gateway's OpenAPI document.

The gateway forwards bodies unchanged and the owning service validates them, so these
models only describe the contract (SPEC "The public API", contracts/README.md); they are
never used to parse what passes through.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class SignupRequest(BaseModel):
    email: str = Field(examples=["ada@example.com"])
    password: str = Field(examples=["correct horse battery staple"])
    name: str = Field(examples=["Ada Lovelace"])


class LoginRequest(BaseModel):
    email: str
    password: str


class User(BaseModel):
    id: str
    email: str
    name: str
    roles: list[str] = Field(examples=[["customer"]])


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"]
    user: User


class Product(BaseModel):
    id: str
    name: str
    description: str
    category: str
    price_cents: int
    stock: int = Field(description="Units available now.")
    image_url: str | None = None


class ProductPage(BaseModel):
    items: list[Product]
    total: int
    page: int
    page_size: int


class ProductWrite(BaseModel):
    """Admin: the fields of a product to create or change (catalog validates them)."""

    name: str | None = None
    description: str | None = None
    category: str | None = None
    price_cents: int | None = None
    image_url: str | None = None


class Category(BaseModel):
    slug: str
    name: str


class CategoryList(BaseModel):
    items: list[Category]


class CartItemAdd(BaseModel):
    product_id: str
    qty: int = Field(ge=1, le=99)


class CartItemUpdate(BaseModel):
    qty: int = Field(ge=1, le=99)


class CartLine(BaseModel):
    product_id: str
    name: str
    unit_price_cents: int
    qty: int
    line_total_cents: int


class Cart(BaseModel):
    user_id: str
    items: list[CartLine]
    total_cents: int
    item_count: int


class CheckoutResponse(BaseModel):
    order_id: str
    status: Literal["pending", "paid", "cancelled"]


class OrderLine(BaseModel):
    product_id: str
    name: str
    qty: int
    unit_price_cents: int


class Order(BaseModel):
    id: str
    status: Literal["pending", "paid", "cancelled"]
    reason: Literal["out_of_stock", "payment_declined", "payment_unavailable"] | None
    items: list[OrderLine]
    total_cents: int
    created_at: str
    updated_at: str


class OrderList(BaseModel):
    items: list[Order]


class ProblemDetails(BaseModel):
    """RFC 9457: every error of the public API."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None


# Models the OpenAPI document names under components/schemas although no route parses
# them: the forwarded bodies (see `api.json_body`) and the problem details.
DOCUMENTED_MODELS: tuple[type[BaseModel], ...] = (
    SignupRequest,
    LoginRequest,
    ProductWrite,
    CartItemAdd,
    CartItemUpdate,
    ProblemDetails,
)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    problem = {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
    return {
        status: {
            "description": "RFC 9457 problem details",
            "content": {"application/problem+json": problem},
        }
        for status in statuses
    }

"""The public API's shapes, for the gateway's OpenAPI document.

The gateway forwards bodies unchanged and the owning service validates them, so these
models only describe the contract (SPEC "The public API", contracts/README.md); they are
never used to parse what passes through. Their constraints are the owning service's,
exactly: a client (and the schemathesis run in tests/fuzz) may rely on every request this
document allows being accepted, and every request it forbids being refused with a 4xx.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# -- request bodies (validated by auth, catalog, cart) -----------------------------------

# auth: a plain ASCII address (dot-atom mailbox, real-looking domain), compared without
# case. The mailbox has at most 64 characters, which no lookahead-free regex can say of a
# dot-atom: the pattern allows the usual ones (up to two dots) and every one it allows is
# accepted.
EMAIL_PATTERN = (
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,32}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,15}){0,2}"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"([A-Za-z]{2,63}|xn--[A-Za-z0-9-]{0,58}[A-Za-z0-9])$"
)
# auth: no control, invisible-formatting or separator characters, and something visible.
NAME_FORBIDDEN = (
    r"\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    r"\u2060-\u206f\ufeff\ufff9-\ufffb"
)
NAME_BLANKS = r" \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
NAME_PATTERN = f"^[^{NAME_FORBIDDEN}]*[^{NAME_FORBIDDEN}{NAME_BLANKS}][^{NAME_FORBIDDEN}]*$"
# catalog and cart: what a product id may look like.
PRODUCT_ID_PATTERN = r"^[A-Za-z0-9._:-]+$"
# catalog: a product's name follows the rule of a user's name; a description may break
# lines; an image URL has no blank or control character.
SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
DESCRIPTION_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
URL_CHAR = r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
IMAGE_URL_PATTERN = f"^(https?://{URL_CHAR}+|/{URL_CHAR}*)?$"


class Strict(BaseModel):
    """A body the owning service refuses unknown fields in (additionalProperties: false)."""

    model_config = ConfigDict(extra="forbid")


class SignupRequest(Strict):
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN, examples=["ada@example.com"])
    password: str = Field(min_length=8, max_length=128, examples=["correct horse battery staple"])
    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN, examples=["Ada Lovelace"])


class LoginRequest(Strict):
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN, examples=["ada@example.com"])
    password: str = Field(min_length=1, max_length=128)


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


ProductName = Annotated[str, Field(min_length=1, max_length=200, pattern=NAME_PATTERN)]
Description = Annotated[str, Field(max_length=5000, pattern=DESCRIPTION_PATTERN)]
CategorySlug = Annotated[str, Field(min_length=1, max_length=64, pattern=SLUG_PATTERN)]
PriceCents = Annotated[int, Field(ge=0, le=100_000_000)]
ImageUrl = Annotated[
    str,
    Field(
        max_length=2000,
        pattern=IMAGE_URL_PATTERN,
        description="Empty, an absolute http(s) URL, or a path on the storefront.",
    ),
]


class ProductCreate(Strict):
    """Admin: a new product (its category is created if new)."""

    name: ProductName
    description: Description = ""
    category: CategorySlug
    price_cents: PriceCents
    image_url: ImageUrl = ""


def partial_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A PATCH body of `schema`'s fields: any of them (at least one), none null."""
    partial = {key: value for key, value in schema.items() if key != "required"}
    properties = {
        name: {key: value for key, value in prop.items() if key != "default"}
        for name, prop in schema.get("properties", {}).items()
    }
    return {**partial, "properties": properties, "minProperties": 1}


class Category(BaseModel):
    slug: str
    name: str


class CategoryList(BaseModel):
    items: list[Category]


Quantity = Annotated[int, Field(ge=1, le=99)]


class CartItemAdd(Strict):
    product_id: str = Field(min_length=1, max_length=64, pattern=PRODUCT_ID_PATTERN)
    qty: Quantity


class CartItemUpdate(Strict):
    qty: Quantity


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
    ProductCreate,
    CartItemAdd,
    CartItemUpdate,
    ProblemDetails,
)


def order_event_schema() -> dict[str, Any]:
    """One server-sent event of an order's stream: its `data` is the Order as JSON."""
    return {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": "#/components/schemas/Order"},
            },
            "event": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        },
    }


# Problems any forwarded call may answer: the owning service is down (or cannot fetch the
# signing keys that check a token), or slow.
UPSTREAM = (503, 504)
# Problems of a call with a JSON body: too large, or not what the operation takes.
BODY = (413, 422)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    problem = {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}
    return {
        status: {
            "description": "RFC 9457 problem details",
            "content": {"application/problem+json": problem},
        }
        for status in statuses
    }

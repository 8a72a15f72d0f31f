"""The storefront: server-rendered pages over the public API. No JavaScript framework;
every action is a plain form post (CSRF-checked) answered by a redirect (post/redirect/get)
or by the same page with a friendly message."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from starlette.responses import HTMLResponse, Response

from bazaar.platform.ratelimit import TooManyRequests
from bazaar.services.gateway import domain, mail
from bazaar.services.gateway.handlers import Gateway, GatewayService
from bazaar.services.gateway.pages import (
    CurrentVisitor,
    FormPost,
    MaybeVisitor,
    Visitor,
    clear_session,
    redirect,
    render,
    set_session,
    shop_for,
)
from bazaar.services.gateway.shop import Json, ShopError

storefront = APIRouter(include_in_schema=False)

PAGE_SIZE = 12
FormField = Annotated[str, Form()]
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9-]{8,64}$")


def _page_number(raw: str) -> int:
    return int(raw) if raw.isdigit() and 0 < int(raw) <= 100_000 else 1


# -- products --------------------------------------------------------------------------


@storefront.get("/", response_class=HTMLResponse)
async def home(
    request: Request,
    gateway: Gateway,
    visitor: MaybeVisitor,
    q: str = "",
    category: str = "",
    page: str = "1",
) -> Response:
    shop = shop_for(request, gateway, visitor)
    q, category = q.strip()[:100], category.strip()[:64]
    listing, categories = await asyncio.gather(
        shop.products(q, category, _page_number(page), PAGE_SIZE), shop.categories()
    )
    pagination = domain.paginate(listing.get("total"), listing.get("page"), PAGE_SIZE)
    context = {
        "products": [p for p in listing.get("items", []) if isinstance(p, dict)],
        "categories": categories,
        "q": q,
        "category": category,
        "pagination": pagination,
        "previous_link": domain.page_link(pagination.page - 1, q, category),
        "next_link": domain.page_link(pagination.page + 1, q, category),
    }
    return await render(request, gateway, "products.html", context)


async def _product_page(
    request: Request,
    gateway: GatewayService,
    visitor: Visitor | None,
    product_id: str,
    status: int = 200,
    **context: Any,
) -> Response:
    try:
        product = await shop_for(request, gateway, visitor).product(product_id)
    except ShopError as exc:
        if exc.status == 404:
            raise ShopError(404, "This product does not exist (any more).") from exc
        raise
    return await render(
        request, gateway, "product.html", {"product": product, **context}, status=status
    )


@storefront.get("/products/{product_id}", response_class=HTMLResponse)
async def product_page(
    request: Request, gateway: Gateway, product_id: str, visitor: MaybeVisitor
) -> Response:
    return await _product_page(request, gateway, visitor, product_id)


# -- cart ------------------------------------------------------------------------------


@storefront.post("/cart/items", dependencies=[FormPost])
async def add_to_cart(
    request: Request,
    gateway: Gateway,
    visitor: CurrentVisitor,
    product_id: FormField = "",
    qty: FormField = "1",
) -> Response:
    amount = domain.parse_qty(qty)
    if amount is None:
        error = "Choose a quantity between 1 and 99."
        return await _product_page(request, gateway, visitor, product_id, 422, error=error, qty=qty)
    try:
        await shop_for(request, gateway, visitor).add_to_cart(product_id, amount)
    except ShopError as exc:
        if exc.status >= 500 or exc.status == 401:
            raise
        return await _product_page(
            request, gateway, visitor, product_id, exc.status, error=exc.message, qty=qty
        )
    return redirect("/cart")


async def _cart_page(
    request: Request, gateway: GatewayService, visitor: Visitor, error: str = "", status: int = 200
) -> Response:
    cart = await shop_for(request, gateway, visitor).cart()
    context = {
        "cart": cart,
        "lines": [line for line in cart.get("items", []) if isinstance(line, dict)],
        "cart_count": cart.get("item_count"),
        # One key per rendering of the cart: a double-clicked checkout makes one order.
        "checkout_key": str(uuid.uuid4()),
        "error": error,
    }
    return await render(request, gateway, "cart.html", context, status=status)


@storefront.get("/cart", response_class=HTMLResponse)
async def cart_page(request: Request, gateway: Gateway, visitor: CurrentVisitor) -> Response:
    return await _cart_page(request, gateway, visitor)


@storefront.post("/cart/items/{product_id}", dependencies=[FormPost])
async def change_qty(
    request: Request,
    gateway: Gateway,
    product_id: str,
    visitor: CurrentVisitor,
    qty: FormField = "",
) -> Response:
    amount = domain.parse_qty(qty)
    if amount is None:
        return await _cart_page(
            request, gateway, visitor, "Choose a quantity between 1 and 99.", 422
        )
    try:
        await shop_for(request, gateway, visitor).set_qty(product_id, amount)
    except ShopError as exc:
        if exc.status >= 500 or exc.status == 401:
            raise
        return await _cart_page(request, gateway, visitor, exc.message, exc.status)
    return redirect("/cart")


@storefront.post("/cart/items/{product_id}/remove", dependencies=[FormPost])
async def remove_from_cart(
    request: Request, gateway: Gateway, product_id: str, visitor: CurrentVisitor
) -> Response:
    try:
        await shop_for(request, gateway, visitor).remove(product_id)
    except ShopError as exc:
        if exc.status != 404:  # already gone is what was asked for
            raise
    return redirect("/cart")


# -- checkout and orders ---------------------------------------------------------------


@storefront.post("/checkout", dependencies=[FormPost])
async def checkout(
    request: Request, gateway: Gateway, visitor: CurrentVisitor, key: FormField = ""
) -> Response:
    idempotency_key = key if IDEMPOTENCY_KEY.match(key) else str(uuid.uuid4())
    try:
        await gateway.checkouts.count(visitor.principal.user_id)
    except TooManyRequests:
        message = "That was a lot of checkouts in a few seconds. Please wait a moment."
        return await _cart_page(request, gateway, visitor, message, 429)
    try:
        placed = await shop_for(request, gateway, visitor).checkout(idempotency_key)
    except ShopError as exc:
        if exc.status >= 500 or exc.status == 401:
            raise
        return await _cart_page(request, gateway, visitor, exc.message, exc.status)
    order_id = placed.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        raise ShopError(502, "The order service gave an answer we could not read.")
    return redirect("/orders/" + quote(order_id, safe=""))


@storefront.get("/orders", response_class=HTMLResponse)
async def orders_page(request: Request, gateway: Gateway, visitor: CurrentVisitor) -> Response:
    orders = await shop_for(request, gateway, visitor).orders()
    return await render(request, gateway, "orders.html", {"orders": orders})


@storefront.get("/orders/{order_id}", response_class=HTMLResponse)
async def order_page(
    request: Request, gateway: Gateway, order_id: str, visitor: CurrentVisitor
) -> Response:
    try:
        order: Json = await shop_for(request, gateway, visitor).order(order_id)
    except ShopError as exc:
        if exc.status == 404:
            raise ShopError(404, "There is no such order in your account.") from exc
        raise
    return await render(request, gateway, "order.html", {"order": order})


# -- signup, login, logout -------------------------------------------------------------


@storefront.get("/signup", response_class=HTMLResponse)
async def signup_form(request: Request, gateway: Gateway, next: str = "/") -> Response:
    return await render(request, gateway, "signup.html", {"next": domain.safe_next(next)})


@storefront.post("/signup", dependencies=[FormPost])
async def signup(
    request: Request,
    gateway: Gateway,
    email: FormField = "",
    password: FormField = "",
    name: FormField = "",
    next: FormField = "/",
) -> Response:
    context = {"email": email, "name": name, "next": domain.safe_next(next)}
    if not email.strip() or not password or not name.strip():
        context["error"] = "Please fill in your name, email and a password."
        return await render(request, gateway, "signup.html", context, status=422)
    try:
        answer = await shop_for(request, gateway, None).signup(
            email.strip(), password, name.strip()
        )
    except ShopError as exc:
        if exc.status >= 500:
            raise
        context["error"] = (
            "An account with this email already exists. Log in instead?"
            if exc.status == 409
            else exc.message
        )
        return await render(request, gateway, "signup.html", context, status=exc.status)
    return _logged_in(request, answer, context["next"])


@storefront.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, gateway: Gateway, next: str = "/") -> Response:
    return await render(request, gateway, "login.html", {"next": domain.safe_next(next)})


@storefront.post("/login", dependencies=[FormPost])
async def login(
    request: Request,
    gateway: Gateway,
    email: FormField = "",
    password: FormField = "",
    next: FormField = "/",
) -> Response:
    context = {"email": email, "next": domain.safe_next(next)}
    if not email.strip() or not password:
        context["error"] = "Please enter your email and password."
        return await render(request, gateway, "login.html", context, status=422)
    try:
        answer = await shop_for(request, gateway, None).login(email.strip(), password)
    except ShopError as exc:
        if exc.status >= 500:
            raise
        context["error"] = "Wrong email or password." if exc.status == 401 else exc.message
        return await render(request, gateway, "login.html", context, status=exc.status)
    return _logged_in(request, answer, context["next"])


def _logged_in(request: Request, answer: Json, next_page: str) -> Response:
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise ShopError(502, "The sign-in service gave an answer we could not read.")
    response = redirect(next_page)
    set_session(response, request, token)
    return response


@storefront.post("/logout", dependencies=[FormPost])
async def logout() -> Response:
    response = redirect("/")
    clear_session(response)
    return response


# -- the local mailbox -----------------------------------------------------------------


@storefront.get("/mail", response_class=HTMLResponse)
async def mailbox_page(request: Request, gateway: Gateway, visitor: CurrentVisitor) -> Response:
    mails = await asyncio.to_thread(
        mail.list_mails, gateway.mail_folder, visitor.email, visitor.is_admin
    )
    return await render(request, gateway, "mail.html", {"mails": mails})


@storefront.get("/mail/{key}", response_class=HTMLResponse)
async def mail_page(
    request: Request, gateway: Gateway, key: str, visitor: CurrentVisitor
) -> Response:
    found = await asyncio.to_thread(
        mail.read_mail, gateway.mail_folder, key, visitor.email, visitor.is_admin
    )
    if found is None:
        raise ShopError(404, "There is no such mail in your mailbox.")
    return await render(request, gateway, "mail_message.html", {"mail": found})

from __future__ import annotations

import httpx
import pytest

from bazaar.services.gateway.pages import SESSION_COOKIE
from bazaar.services.gateway.tests.fakes import SHOP_URL, ClientFactory, FakeShop
from bazaar.testing import TokenMinter


async def log_in(store: httpx.AsyncClient, email: str = "ada@example.com") -> None:
    password = {"ada@example.com": "correct horse", "root@example.com": "admin password"}[email]
    answer = await store.post("/login", data={"email": email, "password": password})
    assert answer.status_code == 303, answer.text


def is_page(answer: httpx.Response) -> bool:
    return answer.headers["content-type"].startswith("text/html")


async def test_the_home_page_lists_products_with_prices_from_cents(
    store: httpx.AsyncClient,
) -> None:
    page = await store.get("/")
    assert page.status_code == 200
    assert is_page(page)
    assert "Teapot" in page.text
    assert "Walnut cutting board" in page.text
    assert "$24.99" in page.text
    assert "$39.50" in page.text
    assert "Out of stock" in page.text  # the linen apron
    assert 'href="/login"' in page.text  # not logged in
    assert '<link rel="stylesheet" href="/static/style.css">' in page.text
    assert (await store.get("/static/style.css")).status_code == 200


async def test_search_category_and_pagination_reach_the_catalog(
    store: httpx.AsyncClient, shop: FakeShop
) -> None:
    page = await store.get("/", params={"q": "teap", "category": "kitchen", "page": "1"})
    assert "Teapot" in page.text
    assert "Walnut" not in page.text
    assert shop.catalog_queries[-1] == {
        "q": "teap",
        "category": "kitchen",
        "page": "1",
        "page_size": "12",
    }
    for n in range(20):
        shop.add_product(f"Mug {n}", 900)
    first = await store.get("/")
    assert 'href="/?page=2"' in first.text
    second = await store.get("/?page=2")
    assert "Page 2 of 2" in second.text
    assert (await store.get("/?page=oops")).status_code == 200  # read as page 1


async def test_a_product_name_cannot_inject_markup(
    store: httpx.AsyncClient, shop: FakeShop
) -> None:
    product_id = shop.add_product('<script>alert("x")</script>', 100)
    for path in ("/", f"/products/{product_id}", "/?q=<b>bold</b>"):
        page = await store.get(path)
        assert "<script>alert" not in page.text
        assert "<b>bold" not in page.text
    assert "&lt;script&gt;alert" in (await store.get(f"/products/{product_id}")).text


async def test_a_product_page_and_a_missing_one(store: httpx.AsyncClient) -> None:
    page = await store.get("/products/p1")
    assert page.status_code == 200
    assert "Teapot" in page.text
    assert "Add to cart" in page.text
    missing = await store.get("/products/nope")
    assert missing.status_code == 404
    assert is_page(missing)
    assert "does not exist" in missing.text


async def test_login_sets_an_http_only_same_site_cookie(store: httpx.AsyncClient) -> None:
    answer = await store.post(
        "/login", data={"email": "ada@example.com", "password": "correct horse", "next": "/cart"}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/cart"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    home = await store.get("/")
    assert "ada@example.com" in home.text
    assert "Log out" in home.text


async def test_bad_credentials_and_bad_signups_are_shown_on_the_form(
    store: httpx.AsyncClient,
) -> None:
    wrong = await store.post("/login", data={"email": "ada@example.com", "password": "nope"})
    assert wrong.status_code == 401
    assert "Wrong email or password" in wrong.text
    assert SESSION_COOKIE not in store.cookies
    taken = await store.post(
        "/signup", data={"email": "ada@example.com", "password": "long enough", "name": "Ada"}
    )
    assert taken.status_code == 409
    assert "already exists" in taken.text
    short = await store.post(
        "/signup", data={"email": "bo@example.com", "password": "short", "name": "Bo"}
    )
    assert short.status_code == 422
    assert "at least 8 characters" in short.text
    assert 'value="bo@example.com"' in short.text  # the form keeps what was typed
    empty = await store.post("/signup", data={})
    assert empty.status_code == 422
    assert is_page(empty)


async def test_signup_logs_in_and_never_redirects_off_site(store: httpx.AsyncClient) -> None:
    answer = await store.post(
        "/signup",
        data={
            "email": "new@example.com",
            "password": "long enough",
            "name": "New",
            "next": "//evil.example/",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    assert SESSION_COOKIE in store.cookies


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null", "Referer": "http://evil.example/page"},
        {"Origin": "", "Referer": ""},
    ],
)
async def test_a_form_post_from_another_site_is_refused(
    store: httpx.AsyncClient, shop: FakeShop, headers: dict[str, str]
) -> None:
    answer = await store.post(
        "/login",
        data={"email": "ada@example.com", "password": "correct horse"},
        headers=headers,
    )
    assert answer.status_code == 403
    assert is_page(answer)
    assert "not sent from a page of this shop" in answer.text
    assert SESSION_COOKIE not in store.cookies

    await log_in(store)
    refused = await store.post(
        "/cart/items", data={"product_id": "p1", "qty": "1"}, headers=headers
    )
    assert refused.status_code == 403
    assert not any(shop.carts.values())


async def test_a_form_post_with_only_a_same_site_referer_is_accepted(
    store: httpx.AsyncClient,
) -> None:
    answer = await store.post(
        "/login",
        data={"email": "ada@example.com", "password": "correct horse"},
        headers={"Origin": "", "Referer": f"{SHOP_URL}/login"},
    )
    assert answer.status_code == 303


async def test_pages_that_need_a_login_send_to_the_login_form(store: httpx.AsyncClient) -> None:
    for path in ("/cart", "/orders", "/orders/x", "/mail"):
        answer = await store.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/login?next={path}"
    post = await store.post(
        "/cart/items",
        data={"product_id": "p1", "qty": "1"},
        headers={"Referer": f"{SHOP_URL}/products/p1"},
    )
    assert post.headers["location"] == "/login?next=/products/p1"


async def test_an_expired_session_counts_as_logged_out(
    store: httpx.AsyncClient, shop: FakeShop, minter: TokenMinter
) -> None:
    expired = minter.token(shop.users["ada@example.com"]["id"], ttl=-60)
    store.cookies.set(SESSION_COOKIE, expired, domain="shop.test")
    home = await store.get("/")
    assert home.status_code == 200
    assert 'href="/login"' in home.text
    assert f'{SESSION_COOKIE}=""' in home.headers["set-cookie"]  # cleared


async def test_shopping_from_cart_to_a_paid_order(store: httpx.AsyncClient, shop: FakeShop) -> None:
    await log_in(store)
    added = await store.post("/cart/items", data={"product_id": "p1", "qty": "2"})
    assert added.status_code == 303
    assert added.headers["location"] == "/cart"
    await store.post("/cart/items", data={"product_id": "p2", "qty": "1"})

    cart = await store.get("/cart")
    assert cart.status_code == 200
    assert "Teapot" in cart.text
    assert "$49.98" in cart.text  # 2 x 24.99
    assert "$89.48" in cart.text  # + 39.50
    assert '<span class="badge" id="cart-count">3</span>' in cart.text

    assert (await store.post("/cart/items/p2", data={"qty": "3"})).status_code == 303
    assert (await store.post("/cart/items/p1/remove")).status_code == 303
    user_id = shop.users["ada@example.com"]["id"]
    assert shop.carts[user_id] == {"p2": 3}

    cart = await store.get("/cart")
    key = cart.text.split('name="key" value="')[1].split('"')[0]
    placed = await store.post("/checkout", data={"key": key})
    assert placed.status_code == 303
    assert placed.headers["location"].startswith("/orders/")
    again = await store.post("/checkout", data={"key": key})  # a double click
    assert again.headers["location"] == placed.headers["location"]
    assert len(shop.orders) == 1

    order_page = await store.get(placed.headers["location"])
    assert order_page.status_code == 200
    assert "pending" in order_page.text
    assert 'http-equiv="refresh"' in order_page.text
    assert "$118.50" in order_page.text

    (order,) = shop.orders.values()
    order["status"] = "paid"
    paid = await store.get(placed.headers["location"])
    assert "paid" in paid.text
    assert 'http-equiv="refresh"' not in paid.text
    listing = await store.get("/orders")
    assert order["id"] in listing.text


async def test_a_cancelled_order_says_why(store: httpx.AsyncClient, shop: FakeShop) -> None:
    await log_in(store)
    await store.post("/cart/items", data={"product_id": "p1", "qty": "1"})
    placed = await store.post("/checkout", data={"key": "k-123456789"})
    (order,) = shop.orders.values()
    order.update(status="cancelled", reason="out_of_stock")
    page = await store.get(placed.headers["location"])
    assert "Out of stock" in page.text
    assert 'http-equiv="refresh"' not in page.text


async def test_cart_mistakes_are_friendly_messages(store: httpx.AsyncClient) -> None:
    await log_in(store)
    empty = await store.post("/checkout", data={"key": "k-123456789"})
    assert empty.status_code == 422
    assert is_page(empty)
    assert "the cart is empty" in empty.text
    bad_qty = await store.post("/cart/items", data={"product_id": "p1", "qty": "-3"})
    assert bad_qty.status_code == 422
    assert "between 1 and 99" in bad_qty.text
    unknown = await store.post("/cart/items", data={"product_id": "ghost", "qty": "1"})
    assert unknown.status_code == 404
    assert "does not exist" in unknown.text
    someone_elses = await store.get("/orders/not-mine")
    assert someone_elses.status_code == 404
    assert "no such order" in someone_elses.text


async def test_logout_clears_the_cookie(store: httpx.AsyncClient) -> None:
    await log_in(store)
    answer = await store.post("/logout")
    assert answer.status_code == 303
    assert f'{SESSION_COOKIE}=""' in answer.headers["set-cookie"]
    assert 'href="/login"' in (await store.get("/")).text


async def test_a_service_outage_is_a_friendly_page(
    make_client: ClientFactory, shop: FakeShop
) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    transports: dict[str, httpx.AsyncBaseTransport] = {
        name: httpx.ASGITransport(app=app) for name, app in shop.apps().items()
    }
    transports["catalog"] = httpx.MockTransport(down)
    async with make_client(transports) as client:
        page = await client.get("/")
    assert page.status_code == 503
    assert is_page(page)
    assert "catalog service is unavailable" in page.text
    assert "Traceback" not in page.text

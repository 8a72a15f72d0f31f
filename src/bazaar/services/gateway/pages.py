"""What every storefront page needs: who is visiting (the session cookie), the CSRF check
of form posts, rendering a template with the header's data, and turning failures into
friendly pages rather than stack traces."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import Depends, FastAPI, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bazaar.platform import web
from bazaar.platform.logs import get_logger
from bazaar.platform.problems import Problem
from bazaar.platform.tokens import Principal
from bazaar.services.gateway import domain
from bazaar.services.gateway.handlers import Gateway, GatewayService
from bazaar.services.gateway.shop import Shop, ShopError
from bazaar.services.gateway.upstreams import forwarded_for

log = get_logger(__name__)

SESSION_COOKIE = "bazaar_session"
TEMPLATES = Path(__file__).parent / "templates"
SHOP_NAME = "Bazaar"
_UNKNOWN = object()  # "not worked out yet", as opposed to None: "no visitor"


@dataclass(frozen=True)
class Visitor:
    """A logged-in visitor: who the session token says, and the token to call with."""

    principal: Principal
    token: str

    @property
    def email(self) -> str:
        return self.principal.email

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin


class LoginRequired(Exception):
    """Raised by pages that need a visitor; answered with a redirect to /login."""


class ForeignOrigin(Exception):
    """A form post that does not come from a page of this site."""


def create_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = domain.format_cents
    env.filters["segment"] = lambda value: quote(str(value), safe="")
    env.filters["when"] = domain.format_when
    env.filters["image_url"] = domain.safe_image_url
    env.filters["reason"] = domain.cancel_reason
    env.tests["final"] = domain.is_final
    env.globals["shop_name"] = SHOP_NAME
    return env


# -- the visitor -----------------------------------------------------------------------


async def current_visitor(request: Request, gateway: Gateway) -> Visitor | None:
    """The visitor behind the session cookie, or None (no cookie, or a token that no
    longer verifies: expired, or signed by a retired key). Worked out once per request."""
    known = getattr(request.state, "visitor", _UNKNOWN)
    if known is None or isinstance(known, Visitor):
        return known
    visitor = None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        try:
            visitor = Visitor(await gateway.tokens.verify(token), token)
        except Problem as exc:  # invalid (401), or the signing keys out of reach (503)
            log.info("session token not accepted", status=exc.status)
    request.state.visitor = visitor
    return visitor


MaybeVisitor = Annotated[Visitor | None, Depends(current_visitor)]


async def require_visitor(visitor: MaybeVisitor) -> Visitor:
    if visitor is None:
        raise LoginRequired()
    return visitor


CurrentVisitor = Annotated[Visitor, Depends(require_visitor)]


def shop_for(request: Request, gateway: GatewayService, visitor: Visitor | None) -> Shop:
    return Shop(
        gateway.upstreams,
        visitor.token if visitor else None,
        web.request_id(request.scope),
        forwarded_for(request),
    )


def set_session(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")


# -- CSRF ------------------------------------------------------------------------------


async def same_origin(request: Request) -> None:
    """Dependency of every form post. The session cookie is SameSite=Lax (a cross-site
    POST carries no cookie), and the post must also come from a page of this very site."""
    if not domain.is_same_origin(
        request.headers.get("origin"), request.headers.get("referer"), request.headers.get("host")
    ):
        raise ForeignOrigin()


FormPost = Depends(same_origin)


# -- rendering -------------------------------------------------------------------------


async def render(
    request: Request,
    gateway: GatewayService,
    template: str,
    context: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    """A page with the header's data: the visitor and their cart's item count."""
    context = dict(context or {})
    visitor = await current_visitor(request, gateway)
    if visitor is not None and "cart_count" not in context:
        context["cart_count"] = await _cart_count(request, gateway, visitor)
    page = gateway.templates.get_template(template)
    html = page.render(request=request, visitor=visitor, **context)
    response = HTMLResponse(html, status_code=status)
    if visitor is None and SESSION_COOKIE in request.cookies:
        clear_session(response)  # a token that no longer verifies is of no use to keep
    return response


async def _cart_count(request: Request, gateway: GatewayService, visitor: Visitor) -> int | None:
    try:
        cart = await shop_for(request, gateway, visitor).cart()
    except ShopError:
        return None  # the header goes without the count; the page itself still works
    count = cart.get("item_count")
    return count if isinstance(count, int) else None


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def login_redirect(request: Request) -> RedirectResponse:
    """To the login form, coming back afterwards to this page (or, after a form post, to
    the page the form was on)."""
    if request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        referer = urlsplit(request.headers.get("referer", ""))
        target = referer.path + (f"?{referer.query}" if referer.query else "")
    return redirect("/login?next=" + quote(domain.safe_next(target), safe="/"))


def install_page_errors(app: FastAPI, gateway: GatewayService) -> None:
    """Failures of a page become a page: never a stack trace, never JSON."""

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        response = login_redirect(request)
        clear_session(response)
        return response

    @app.exception_handler(ForeignOrigin)
    async def _foreign(request: Request, exc: ForeignOrigin) -> Response:
        message = (
            "This form was not sent from a page of this shop, so it was refused. "
            "Go back to the shop and try again."
        )
        return await render(request, gateway, "error.html", {"message": message}, status=403)

    @app.exception_handler(ShopError)
    async def _shop(request: Request, exc: ShopError) -> Response:
        if exc.status == 401:  # the services no longer accept the session's token
            request.state.visitor = None
            response = login_redirect(request)
            clear_session(response)
            return response
        context = {"message": exc.message}
        return await render(request, gateway, "error.html", context, status=exc.status)

"""The composition root: settings in, a ready app out. Tests pass their own `transport`
(fake upstream apps or an httpx MockTransport) and `token_verifier` (a TokenMinter's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from bazaar.platform.cli import run_service_cli, serve_asgi
from bazaar.platform.ratelimit import AsyncRateLimiter
from bazaar.platform.tokens import TokenVerifier
from bazaar.platform.web import Resource, create_app
from bazaar.services.gateway.admin import stock_admin
from bazaar.services.gateway.api import install_openapi, public_api
from bazaar.services.gateway.handlers import GatewayService
from bazaar.services.gateway.ops import ops_pages
from bazaar.services.gateway.opsapi import OpsApi
from bazaar.services.gateway.pages import create_templates, install_page_errors
from bazaar.services.gateway.settings import GatewaySettings
from bazaar.services.gateway.storefront import storefront
from bazaar.services.gateway.throttling import CheckoutThrottle
from bazaar.services.gateway.upstreams import Inventory, TransportOverride, Upstreams

STATIC = Path(__file__).parent / "static"
DESCRIPTION = (
    "Bazaar's public API. Money is integer cents; every error is RFC 9457 "
    "`application/problem+json`. Cart, checkout and orders need `Authorization: Bearer "
    "<token>` (from signup or login); stock management needs the `admin` role."
)


def build_app(
    settings: GatewaySettings,
    *,
    transport: TransportOverride = None,
    token_verifier: TokenVerifier | None = None,
) -> FastAPI:
    gateway = build_gateway(settings, transport=transport, token_verifier=token_verifier)
    app = create_app(
        "gateway",
        title="Bazaar",
        description=DESCRIPTION,
        resources=[connections_of(gateway)],
        readiness=[gateway.upstreams_ready],
        provides=gateway,
        max_body_bytes=settings.max_body_bytes,
    )
    app.include_router(public_api(gateway))
    app.include_router(stock_admin)
    app.include_router(storefront)
    app.include_router(ops_pages)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_page_errors(app, gateway)
    install_openapi(app)
    return app


def build_gateway(
    settings: GatewaySettings,
    *,
    transport: TransportOverride = None,
    token_verifier: TokenVerifier | None = None,
) -> GatewayService:
    tokens = token_verifier or TokenVerifier(settings.jwks_url)
    upstreams = Upstreams(
        settings.upstream_urls(),
        timeout=settings.upstream_timeout,
        stream_timeout=settings.stream_timeout,
        max_body_bytes=settings.max_body_bytes,
        transport=transport,
    )
    limiter = AsyncRateLimiter(settings.rate_limit_url)
    return GatewayService(
        upstreams=upstreams,
        inventory=Inventory(settings.inventory_addr),
        tokens=tokens,
        checkouts=CheckoutThrottle(settings.checkout_rate, limiter, tokens),
        templates=create_templates(),
        mail_folder=settings.mail_folder,
        ops=OpsApi(settings.ops_api_url),
    )


def connections_of(gateway: GatewayService) -> Resource:
    """The upstreams' pools and inventory's channel, closed when the app stops."""

    @asynccontextmanager
    async def connections(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await gateway.aclose()

    return connections


def main() -> None:
    run_service_cli(GatewaySettings, serve_asgi(build_app))

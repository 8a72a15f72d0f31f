"""The composition root: settings in, a ready app out. Tests pass their own `transport`
(fake upstream apps or an httpx MockTransport) and `token_verifier` (a TokenMinter's)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bazaar.contracts.generated import inventory_pb2_grpc
from bazaar.platform.cli import run_service_cli
from bazaar.platform.config import ServiceSettings
from bazaar.platform.grpc import create_channel
from bazaar.platform.ratelimit import AsyncRateLimiter
from bazaar.platform.serving import run_asgi
from bazaar.platform.tokens import TokenVerifier
from bazaar.platform.web import create_app
from bazaar.services.gateway import admin, api, storefront
from bazaar.services.gateway.pages import create_templates, install_page_errors
from bazaar.services.gateway.settings import GatewaySettings
from bazaar.services.gateway.throttling import CheckoutThrottle
from bazaar.services.gateway.upstreams import TransportOverride, Upstreams

STATIC = Path(__file__).parent / "static"
READINESS_TIMEOUT = 1.0
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
    @asynccontextmanager
    async def upstream_clients(app: FastAPI) -> AsyncIterator[None]:
        app.state.upstreams = Upstreams(
            settings.upstream_urls(),
            timeout=settings.upstream_timeout,
            stream_timeout=settings.stream_timeout,
            max_body_bytes=settings.max_body_bytes,
            transport=transport,
        )
        try:
            yield
        finally:
            await app.state.upstreams.aclose()

    @asynccontextmanager
    async def inventory_channel(app: FastAPI) -> AsyncIterator[None]:
        channel = create_channel(settings.inventory_addr)
        app.state.inventory = inventory_pb2_grpc.InventoryStub(channel)
        app.state.inventory_health = health_pb2_grpc.HealthStub(channel)
        try:
            yield
        finally:
            await channel.close()

    async def upstreams_ready() -> None:
        """Every HTTP upstream's /healthz and inventory's gRPC health, asked all at once."""
        results = await asyncio.gather(
            app.state.upstreams.check_ready(READINESS_TIMEOUT),
            inventory_serving(app.state.inventory_health),
            return_exceptions=True,
        )
        failures = [str(result) for result in results if isinstance(result, BaseException)]
        if failures:
            raise RuntimeError(", ".join(failures))

    app = create_app(
        "gateway",
        title="Bazaar",
        description=DESCRIPTION,
        resources=[upstream_clients, inventory_channel],
        readiness=[upstreams_ready],
        max_body_bytes=settings.max_body_bytes,
    )
    app.state.settings = settings
    app.state.checkout_throttle = CheckoutThrottle(
        settings.checkout_rate, AsyncRateLimiter(settings.rate_limit_url)
    )
    app.state.token_verifier = token_verifier or TokenVerifier(settings.jwks_url)
    app.state.templates = create_templates()
    app.include_router(api.router)
    app.include_router(admin.router)
    app.include_router(storefront.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_page_errors(app)
    api.install_openapi(app)
    return app


async def inventory_serving(health: health_pb2_grpc.HealthStub) -> None:
    try:
        answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=READINESS_TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        raise RuntimeError(f"inventory: {exc.code().name}") from exc
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        raise RuntimeError("inventory: not serving")


def serve(settings: ServiceSettings) -> None:
    assert isinstance(settings, GatewaySettings)
    run_asgi(build_app(settings), settings)


def main() -> None:
    run_service_cli(GatewaySettings, serve)

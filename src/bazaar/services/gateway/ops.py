"""The ops page, for admins: every process and its health, outbox lag, dead letters, the
key rates, the orders seen last, and each order's trace as a waterfall across the services
beside its saga's steps. The gateway owns none of it: it asks the ops API that `bazaar up`
runs (`BAZAAR_OPS_API_URL`, its trace store and what the runner knows) and draws it.
Without that API (a deployment with a tracing backend of its own) the page says so."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from bazaar.services.gateway.handlers import Gateway, GatewayService
from bazaar.services.gateway.opsapi import OpsUnavailable
from bazaar.services.gateway.pages import CurrentVisitor, Visitor, render
from bazaar.services.gateway.shop import ShopError

ops_pages = APIRouter(include_in_schema=False)

ORDER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
# One colour per service on the waterfall (the terminal's `bazaar trace` uses the same).
SERVICE_COLOURS = {
    "gateway": "#3b6fd8",
    "auth": "#a23bd8",
    "catalog": "#2e9b4f",
    "cart": "#c9a100",
    "inventory": "#139bb0",
    "order": "#d8463b",
    "payment": "#d83b9a",
    "notification": "#5fae1f",
}


def _admin(visitor: Visitor) -> None:
    if not visitor.is_admin:
        raise ShopError(403, "The ops page is for administrators.")


@ops_pages.get("/ops", response_class=HTMLResponse)
async def ops_page(request: Request, gateway: Gateway, visitor: CurrentVisitor) -> Response:
    _admin(visitor)
    try:
        overview = await gateway.ops.get("/api/overview")
        recent = await gateway.ops.get("/api/orders?limit=25")
    except OpsUnavailable as exc:
        return await _unavailable(request, gateway, str(exc))
    orders = [
        {**o, "started": _when(o.get("started_ns"))} for o in (recent or {}).get("orders", [])
    ]
    context = {"overview": overview or {}, "orders": orders}
    return await render(request, gateway, "ops.html", {**context, "colours": SERVICE_COLOURS})


@ops_pages.get("/ops/orders/{order_id}", response_class=HTMLResponse)
async def ops_order_page(
    request: Request, gateway: Gateway, order_id: str, visitor: CurrentVisitor
) -> Response:
    _admin(visitor)
    if not ORDER_ID.match(order_id):
        raise ShopError(404, "There is no such order.")
    try:
        found = await gateway.ops.get("/api/orders/" + quote(order_id, safe=""))
    except OpsUnavailable as exc:
        return await _unavailable(request, gateway, str(exc))
    if found is None:
        raise ShopError(404, "No trace of this order yet (and no such order).")
    context = {"found": found, "colours": SERVICE_COLOURS}
    return await render(request, gateway, "ops_order.html", context)


def _when(nanoseconds: object) -> str:
    if not isinstance(nanoseconds, int):
        return "-"
    return datetime.fromtimestamp(nanoseconds / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def _unavailable(request: Request, gateway: GatewayService, why: str) -> Response:
    context = {"unavailable": why, "overview": {}, "orders": [], "colours": SERVICE_COLOURS}
    return await render(request, gateway, "ops.html", context, status=503)

"""How an entrypoint reaches its service: one typed object per service.

Each service's `bootstrap.py` builds one object that holds the service's dependencies
(database, neighbours, bus) and whose methods are its use cases, and hands it to the app
it builds (`create_app(..., service=obj)`, `create_flask_app(..., service=obj)`). A route
asks for it by type, through one alias per service:

    Orders = Annotated[OrderService, uses(OrderService)]

    @router.get("/orders")
    async def list_orders(user: CurrentUser, orders: Orders) -> OrderList: ...

Tests build the same object with fakes for the neighbours (cosmicpython's `bootstrap`,
nameko's `worker_factory`) or call its methods directly, without HTTP.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request

Service = TypeVar("Service")

_STATE_KEY = "service"


def provide(app: FastAPI, service: object) -> None:
    """Make `service` the object that `uses(...)` hands to this app's routes."""
    setattr(app.state, _STATE_KEY, service)


def provided(app: FastAPI, kind: type[Service]) -> Service:
    """The object `provide` gave `app`, checked to be a `kind`."""
    service = getattr(app.state, _STATE_KEY, None)
    if not isinstance(service, kind):
        raise RuntimeError(
            f"{app.title}: no {kind.__name__} provided (bootstrap passes create_app(service=...))"
        )
    return service


def uses(kind: type[Service]) -> Any:
    """A FastAPI dependency that gives a route the app's `kind` object."""

    # async: FastAPI runs a plain `def` dependency in a worker thread, on every request.
    async def service(request: Request) -> Service:
        return provided(request.app, kind)

    service.__name__ = f"uses_{kind.__name__}"
    return Depends(service)

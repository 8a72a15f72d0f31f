"""The app factory's outside: problem+json everywhere, request ids, health, metrics."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from bazaar.platform.problems import NotFound
from bazaar.platform.web import create_app


class Thing(BaseModel):
    qty: int


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async def never_ready() -> bool:
        return False

    app = create_app("test", readiness=[never_ready])

    @app.post("/things")
    async def create(thing: Thing) -> Thing:
        return thing

    @app.get("/things/{thing_id}")
    async def read(thing_id: str) -> None:
        raise NotFound(f"no thing {thing_id}")

    @app.patch("/things/{thing_id}")
    async def change(thing_id: str, thing: Thing) -> Thing:
        return thing

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("secret internals")

    shelves = APIRouter()

    @shelves.get("/shelves/{shelf_id}")
    async def shelf(shelf_id: str) -> dict[str, str]:
        return {"shelf": shelf_id}

    app.include_router(shelves)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return dict(body)


async def test_every_error_is_a_problem(client: httpx.AsyncClient) -> None:
    assert "qty" in str(
        assert_problem(await client.post("/things", json={"qty": "x"}), 422)["detail"]
    )
    assert_problem(await client.post("/things", content=b"{broken"), 422)
    assert assert_problem(await client.get("/things/7"), 404)["detail"] == "no thing 7"
    assert_problem(await client.get("/nowhere"), 404)
    assert_problem(await client.delete("/things/7"), 405)
    crashed = assert_problem(await client.get("/crash"), 500)
    assert "secret" not in str(crashed["detail"])


async def test_a_wrong_method_names_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    refused = await client.get("/things")
    assert_problem(refused, 405)
    assert refused.headers["allow"] == "POST"
    refused = await client.delete("/things/7")
    assert_problem(refused, 405)
    assert refused.headers["allow"] == "GET, PATCH"  # Starlette alone said "GET"


async def test_a_body_that_is_not_utf8_is_a_422_like_any_broken_json(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.post(
        "/things", content=b"\r]N\xff\xfe", headers={"content-type": "application/json"}
    )
    assert "UTF-8" in str(assert_problem(answer, 422)["detail"])
    too_deep = b"[" * 30_000 + b"]" * 30_000  # past Python's recursion limit
    answer = await client.post(
        "/things", content=too_deep, headers={"content-type": "application/json"}
    )
    assert "too deep" in str(assert_problem(answer, 422)["detail"])


async def test_request_ids_are_kept_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "abc123"})
    assert given.headers["x-request-id"] == "abc123"
    made = await client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert "never_ready" in str(assert_problem(await client.get("/readyz"), 503)["detail"])
    await client.get("/things/1")
    await client.get("/shelves/top")  # a route of an included router: its template too
    await client.get("/no/such/route")
    metrics = (await client.get("/metrics")).text
    assert 'route="/things/{thing_id}"' in metrics
    assert 'method="GET",route="/shelves/{shelf_id}",service="test",status="200"' in metrics
    assert 'method="GET",route="unmatched",service="test",status="404"' in metrics

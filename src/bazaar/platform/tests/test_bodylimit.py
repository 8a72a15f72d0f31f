"""Request bodies over the limit are 413 problems, declared or streamed, in both app kinds."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import Request
from pydantic import BaseModel

from bazaar.platform.flaskapp import create_flask_app
from bazaar.platform.web import create_app

LIMIT = 2048


class Note(BaseModel):
    text: str


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app("test", max_body_bytes=LIMIT)

    @app.post("/notes")
    async def create(note: Note) -> Note:
        return note

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def assert_413(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert str(LIMIT) in response.json()["detail"]


async def test_a_body_within_the_limit_is_served(client: httpx.AsyncClient) -> None:
    answer = await client.post("/notes", json={"text": "x" * (LIMIT - 100)})
    assert answer.status_code == 200


async def test_a_declared_large_body_is_refused_before_it_is_read(
    client: httpx.AsyncClient,
) -> None:
    assert_413(await client.post("/notes", json={"text": "x" * LIMIT}))


async def test_a_streamed_body_is_refused_once_it_grows_past_the_limit(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 512

    # No Content-Length: only counting what arrives can catch it.
    assert_413(await client.post("/raw", content=chunks()))
    assert_413(await client.post("/notes", content=chunks()))


def test_the_flask_default_is_64_kib() -> None:
    app = create_flask_app("test")

    @app.post("/notes")
    def notes() -> dict[str, int]:
        from flask import request

        return {"size": len(request.get_data())}

    client = app.test_client()
    assert client.post("/notes", data=b"x" * 1000).status_code == 200
    refused = client.post("/notes", data=b"x" * (64 * 1024 + 1))
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"

"""Settings from the environment, and the resilient HTTP client's retries and breaker."""

from typing import ClassVar

import httpx
import pytest

from bazaar.platform.clients import CircuitOpen, ResilientClient, UpstreamError
from bazaar.platform.config import ConfigurationError, ServiceSettings


class DemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "demo"


def test_defaults_are_the_embedded_ones(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BAZAAR_HOME", str(tmp_path))
    settings = DemoSettings.load()
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'demo.db'}"
    assert settings.broker_url.startswith("nats://")


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAZAAR_PORT", "eighty")
    with pytest.raises(ConfigurationError) as error:
        DemoSettings.load()
    assert "BAZAAR_PORT" in str(error.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BAZAAR_BROKER_URL", "kafka://guest:hunter2@broker:9092"),
        ("BAZAAR_BROKER_URL", "nats://ok:4222,ftp://not-ok"),
        ("BAZAAR_DATABASE_URL", "nonsense://nowhere"),
        ("BAZAAR_DATABASE_URL", "postgresql+nodriver://u:hunter2@db/x"),
        ("BAZAAR_DATABASE_URL", "not a url at all"),
        ("BAZAAR_JWKS_URL", "auth:8001/jwks"),
    ],
)
def test_a_url_that_cannot_work_stops_start_up_and_is_not_echoed(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as error:
        DemoSettings.load()
    assert variable in str(error.value)
    assert "hunter2" not in str(error.value)  # a URL may carry a password


def test_database_urls_of_the_supported_databases_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    for url in ("sqlite+aiosqlite:///x.db", "postgresql+asyncpg://u:p@db:5432/bazaar"):
        monkeypatch.setenv("BAZAAR_DATABASE_URL", url)
        assert DemoSettings.load().database_url == url


def flaky(failures: int, status: int = 503) -> tuple[httpx.MockTransport, list[int]]:
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) <= failures:
            return httpx.Response(status)
        return httpx.Response(200, json={"ok": True})

    return httpx.MockTransport(handle), calls


async def test_idempotent_calls_are_retried_until_they_succeed() -> None:
    transport, calls = flaky(2)
    client = ResilientClient("test", "upstream", "http://upstream", transport=transport, attempts=3)
    response = await client.request("GET", "/thing")
    assert response.status_code == 200
    assert len(calls) == 3
    await client.aclose()


async def test_other_calls_are_not_retried_and_4xx_pass_through() -> None:
    transport, calls = flaky(1)
    client = ResilientClient("test", "upstream", "http://upstream", transport=transport)
    with pytest.raises(UpstreamError):
        await client.request("POST", "/thing")
    assert len(calls) == 1
    transport, calls = flaky(1, status=404)
    client = ResilientClient("test", "upstream", "http://upstream", transport=transport)
    assert (await client.request("GET", "/thing")).status_code == 404
    assert len(calls) == 1


async def test_the_breaker_opens_and_stops_calling() -> None:
    transport, calls = flaky(100)
    client = ResilientClient(
        "test",
        "upstream",
        "http://upstream",
        transport=transport,
        attempts=1,
        breaker_threshold=3,
        breaker_ttl=60,
    )
    for _ in range(3):
        with pytest.raises(UpstreamError):
            await client.request("GET", "/thing")
    assert await client.breaker_is_open()
    with pytest.raises(CircuitOpen):
        await client.request("GET", "/thing")
    assert len(calls) == 3

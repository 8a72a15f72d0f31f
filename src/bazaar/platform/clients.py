"""Resilient HTTP client for calls between services: timeouts, retries with exponential
backoff and jitter (tenacity), and a circuit breaker per target (purgatory), over the
platform's `ServiceTransport`."""

from __future__ import annotations

import time
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from bazaar.platform import metrics
from bazaar.platform.lean_imports import hidden
from bazaar.platform.transport import ServiceTransport

# purgatory imports redis (and redis the OpenTelemetry metrics SDK and psutil) only for a
# type alias of its Redis store, which we never use: about 9 MiB of every service's RSS.
with hidden("redis"):
    from purgatory import AsyncCircuitBreakerFactory
    from purgatory.domain.messages.base import Event
    from purgatory.domain.messages.events import ContextChanged
    from purgatory.domain.model import OpenedState

RETRYABLE_STATUS = frozenset({502, 503, 504})


class UpstreamError(Exception):
    """The neighbour could not be reached, or answered 5xx, after every retry."""


class CircuitOpen(UpstreamError):
    """The breaker is open: the call was not even tried."""


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, _RetryableStatus)


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class ResilientClient:
    """One neighbour service. Non-idempotent calls must carry an `Idempotency-Key` to be
    retried; the caller says so with `idempotent=True`."""

    def __init__(
        self,
        service: str,
        target: str,
        base_url: str,
        *,
        timeout: float = 3.0,
        attempts: int = 3,
        breaker_threshold: int = 5,
        breaker_ttl: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.service = service
        self.target = target
        self._attempts = attempts
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport or ServiceTransport(max_connections=100),
        )
        self._breakers = AsyncCircuitBreakerFactory(
            default_threshold=breaker_threshold, default_ttl=breaker_ttl
        )
        self._breaker_ttl = breaker_ttl
        self._breaker_seen: ContextChanged | None = None  # None: closed, as it starts
        self._breakers.add_listener(self._breaker_changed)
        # Read at each scrape: purgatory leaves `opened` only when a call comes after the
        # TTL, while the next call would already go through (half-open).
        metrics.breaker_state.labels(service, target).set_function(self._breaker_state)

    def _breaker_changed(self, circuit: str, event_type: str, event: Event) -> None:
        if isinstance(event, ContextChanged) and circuit == self.target:
            self._breaker_seen = event

    def _breaker_state(self) -> int:
        seen = self._breaker_seen
        if seen is None or seen.state == "closed":
            return metrics.BREAKER_CLOSED
        if seen.state == "opened" and time.time() < (seen.opened_at or 0) + self._breaker_ttl:
            return metrics.BREAKER_OPEN
        return metrics.BREAKER_HALF_OPEN

    async def aclose(self) -> None:
        await self._http.aclose()

    async def breaker_is_open(self) -> bool:
        breaker = await self._breakers.get_breaker(self.target)
        return breaker.context.state == "opened"

    async def request(
        self, method: str, url: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send with retries and the breaker; 4xx answers come back as they are."""
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE")
        attempts = self._attempts if idempotent else 1
        breaker = await self._breakers.get_breaker(self.target)
        try:
            async with breaker:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(attempts),
                    wait=wait_exponential(multiplier=0.05, max=1.0) + wait_random(0, 0.05),
                    retry=retry_if_exception(_is_transient),
                    reraise=True,
                ):
                    with attempt:
                        response = await self._http.request(method, url, **kwargs)
                        if response.status_code in RETRYABLE_STATUS:
                            raise _RetryableStatus(response)
        except _RetryableStatus as exc:
            raise UpstreamError(f"{self.target} answered {exc.response.status_code}") from exc
        except httpx.TransportError as exc:
            raise UpstreamError(f"{self.target} unreachable: {type(exc).__name__}") from exc
        except OpenedState as exc:
            raise CircuitOpen(f"{self.target}: circuit breaker open") from exc
        return response

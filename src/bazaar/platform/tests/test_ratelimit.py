"""Rate limits in memory and on a real Redis, and the client address behind proxies."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bazaar.platform.ratelimit import (
    LOOPBACK_PROXIES,
    AsyncRateLimiter,
    MemoryWindows,
    RateLimiter,
    TooManyRequests,
    TrustedProxies,
    client_address,
    parse_rate,
)
from bazaar.testing import free_port, redis_server


def test_a_rate_is_parsed_or_refused_with_an_example() -> None:
    assert parse_rate("5 per 10 seconds").amount == 5
    with pytest.raises(ValueError, match="10/minute"):
        parse_rate("often")


def test_past_the_rate_a_429_problem_says_when_to_retry() -> None:
    limiter = RateLimiter()
    rate = parse_rate("2/minute")
    limiter.hit(rate, "login", "a@example.com")
    limiter.hit(rate, "login", "a@example.com")
    limiter.hit(rate, "login", "b@example.com")  # another key has its own budget
    with pytest.raises(TooManyRequests) as refused:
        limiter.hit(rate, "login", "a@example.com")
    assert refused.value.status == 429
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    assert "login" in refused.value.detail


async def test_the_async_limiter_counts_the_same_way() -> None:
    limiter = AsyncRateLimiter()
    rate = parse_rate("1/minute")
    await limiter.hit(rate, "checkout", "u1")
    with pytest.raises(TooManyRequests):
        await limiter.hit(rate, "checkout", "u1")


def test_the_window_moves_and_forgets_callers_that_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = 1_000.0
    monkeypatch.setattr(time, "time", lambda: now)
    windows = MemoryWindows()
    rate = parse_rate("2 per 10 seconds")
    assert windows.hit(rate, "login", "a") is None
    now += 4
    assert windows.hit(rate, "login", "a") is None
    now += 1
    assert windows.hit(rate, "login", "a") == 1_010.0  # refused until the first hit leaves
    now += 5  # the first hit, at 1000, is 10 s old: still in the window
    assert windows.hit(rate, "login", "a") == 1_010.0
    now += 0.5  # now it left; the refusals were not counted
    assert windows.hit(rate, "login", "a") is None
    assert windows.hit(rate, "login", "a") == 1_014.0
    windows.hit(rate, "login", "b")
    now += MemoryWindows.SWEEP_SECONDS
    windows.hit(rate, "login", "c")  # the sweep forgot a and b, whose hits are all old
    assert len(windows._hits) == 1


def test_an_unreachable_store_lets_requests_through() -> None:
    limiter = RateLimiter(f"redis://127.0.0.1:{free_port()}/0")
    for _ in range(3):
        limiter.hit(parse_rate("1/minute"), "login", "x")


# --- Redis: every replica counts together ------------------------------------------------


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path) as url:
        yield url


async def test_limiters_sharing_redis_share_the_budget(redis_url: str) -> None:
    rate = parse_rate("3/minute")
    key = uuid.uuid4().hex  # a shared server may hold other tests' counters
    replicas = [RateLimiter(redis_url), RateLimiter(redis_url)]
    replicas[0].hit(rate, "login", key)
    replicas[1].hit(rate, "login", key)
    await AsyncRateLimiter(redis_url).hit(rate, "login", key)
    with pytest.raises(TooManyRequests):
        replicas[0].hit(rate, "login", key)
    with pytest.raises(TooManyRequests):
        await AsyncRateLimiter(redis_url).hit(rate, "login", key)


# --- the client behind proxies ----------------------------------------------------------

LOOPBACK = TrustedProxies.parse(LOOPBACK_PROXIES)


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_address("203.0.113.9", ["1.2.3.4"], LOOPBACK) == "203.0.113.9"


def test_a_trusted_proxy_names_the_client() -> None:
    assert client_address("127.0.0.1", ["198.51.100.7"], LOOPBACK) == "198.51.100.7"
    assert client_address("127.0.0.1", [], LOOPBACK) == "127.0.0.1"


def test_only_the_nearest_untrusted_hop_counts() -> None:
    # The client wrote "1.2.3.4" itself; the proxy appended the address it really saw.
    forwarded = ["1.2.3.4, 198.51.100.7", "127.0.0.1"]
    assert client_address("::1", forwarded, LOOPBACK) == "198.51.100.7"
    proxies = TrustedProxies.parse("127.0.0.1, 10.0.0.0/8")
    assert client_address("10.1.2.3", ["1.2.3.4, 10.9.9.9"], proxies) == "1.2.3.4"


def test_trusted_proxies_must_be_networks() -> None:
    with pytest.raises(ValueError, match="networks"):
        TrustedProxies.parse("localhost")

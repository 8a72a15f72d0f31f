"""Moving-window rate limits: in process memory by default, in Redis (with the `limits`
library) when `BAZAAR_RATE_LIMIT_URL` names one (so every replica of a service counts
together).

    limiter = RateLimiter(settings.rate_limit_url)          # Flask (synchronous)
    limiter.hit(parse_rate("10/minute"), "login", email)   # raises TooManyRequests
    limiter = AsyncRateLimiter(settings.rate_limit_url)     # FastAPI
    await limiter.hit(rate, "checkout", user_id)

Also here: which address a request really comes from, given the proxies it passed
(`client_address`), because a limit per client is only as good as that address.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter as AsyncMovingWindow
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from bazaar.platform.logs import get_logger
from bazaar.platform.problems import Problem

log = get_logger(__name__)

MEMORY = "memory://"
# The key prefix in a shared store: services sharing one Redis never mix their counters.
PREFIX = "bazaar"


class TooManyRequests(Problem):
    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(
            429,
            f"too many {what} attempts; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


def parse_rate(text: str) -> RateLimitItem:
    """ "10/minute", "5 per 10 seconds": a rate, or ValueError saying what is wrong (for
    settings validators)."""
    try:
        return parse(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a rate; write it like '10/minute' or '5 per 10 seconds'"
        ) from None


def _retry_after(reset_time: float) -> int:
    return max(1, math.ceil(reset_time - time.time()))


class MemoryWindows:
    """Moving windows in process memory: per key, the times of its hits still in the
    window. (`limits`' own memory storage hands every key to a thread on each hit, in its
    asyncio flavour, or starts a timer thread, in the other: most of a request's cost.)"""

    SWEEP_SECONDS = 60.0

    def __init__(self) -> None:
        self._hits: dict[str, tuple[float, deque[float]]] = {}
        self._lock = threading.Lock()  # the synchronous limiter serves threads
        self._next_sweep = 0.0

    def hit(self, rate: RateLimitItem, *key: str) -> float | None:
        """Count one hit; None within the rate, else (not counted) when the oldest hit
        leaves the window."""
        window, now = float(rate.get_expiry()), time.time()
        name = rate.key_for(PREFIX, *key)
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            hits = self._hits.setdefault(name, (window, deque()))[1]
            while hits and hits[0] < now - window:
                hits.popleft()
            if len(hits) >= rate.amount:
                return hits[0] + window
            hits.append(now)
            return None

    def _sweep(self, now: float) -> None:
        """Forget the keys with no hit left in their window: memory stays bounded by the
        callers of the last window, not of all time."""
        self._hits = {
            name: (window, hits)
            for name, (window, hits) in self._hits.items()
            if hits and hits[-1] >= now - window
        }
        self._next_sweep = now + self.SWEEP_SECONDS


def _is_memory(url: str) -> bool:
    return not url or url == MEMORY


def _storage_url(url: str, asynchronous: bool) -> tuple[str, dict[str, str]]:
    options: dict[str, str] = {}
    if asynchronous:
        if url.startswith(("redis://", "rediss://")):
            options["implementation"] = "redispy"  # the installed client, not coredis
        url = "async+" + url
    return url, options


class RateLimiter:
    """Moving-window limits, for synchronous code. A store that cannot be reached lets the
    request through (logged): a Redis outage must not lock every customer out."""

    def __init__(self, url: str = MEMORY) -> None:
        self._memory: MemoryWindows | None = None
        self._limiter: MovingWindowRateLimiter | None = None
        if _is_memory(url):
            self._memory = MemoryWindows()
        else:
            storage_url, options = _storage_url(url, asynchronous=False)
            self._limiter = MovingWindowRateLimiter(storage_from_string(storage_url, **options))

    def hit(self, rate: RateLimitItem, what: str, *key: str) -> None:
        """Count one attempt at `what` by `key`; TooManyRequests past the rate."""
        try:
            reset = self._reset_if_refused(rate, what, *key)
        except Exception as exc:  # a store outage: redis' errors are not one family
            log.warning("rate limit store unavailable", what=what, error=type(exc).__name__)
            return
        if reset is not None:
            _refuse(rate, what, reset)

    def _reset_if_refused(self, rate: RateLimitItem, *key: str) -> float | None:
        if self._memory is not None:
            return self._memory.hit(rate, *key)
        assert self._limiter is not None
        if self._limiter.hit(rate, PREFIX, *key):
            return None
        return self._limiter.get_window_stats(rate, PREFIX, *key).reset_time


class AsyncRateLimiter:
    """`RateLimiter` for asyncio code."""

    def __init__(self, url: str = MEMORY) -> None:
        self._memory: MemoryWindows | None = None
        self._limiter: AsyncMovingWindow | None = None
        if _is_memory(url):
            self._memory = MemoryWindows()
        else:
            storage_url, options = _storage_url(url, asynchronous=True)
            self._limiter = AsyncMovingWindow(storage_from_string(storage_url, **options))

    async def hit(self, rate: RateLimitItem, what: str, *key: str) -> None:
        try:
            reset = await self._reset_if_refused(rate, what, *key)
        except Exception as exc:
            log.warning("rate limit store unavailable", what=what, error=type(exc).__name__)
            return
        if reset is not None:
            _refuse(rate, what, reset)

    async def _reset_if_refused(self, rate: RateLimitItem, *key: str) -> float | None:
        if self._memory is not None:
            return self._memory.hit(rate, *key)
        assert self._limiter is not None
        if await self._limiter.hit(rate, PREFIX, *key):
            return None
        return (await self._limiter.get_window_stats(rate, PREFIX, *key)).reset_time


def _refuse(rate: RateLimitItem, what: str, reset_time: float) -> None:
    log.info("rate limit reached", what=what, limit=str(rate))
    raise TooManyRequests(what, _retry_after(reset_time))


# --- who is calling ---------------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK_PROXIES = "127.0.0.0/8,::1/128"


@dataclass(frozen=True)
class TrustedProxies:
    """The networks whose `X-Forwarded-For` is believed (the gateway, a load balancer)."""

    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        """ "127.0.0.0/8, 10.0.0.0/8": networks or single addresses; ValueError if not."""
        try:
            return cls(tuple(ipaddress.ip_network(p.strip()) for p in text.split(",") if p.strip()))
        except ValueError as exc:
            raise ValueError(f"not a list of networks: {exc}") from None

    def trust(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


def client_address(peer: str, forwarded_for: Iterable[str], trusted: TrustedProxies) -> str:
    """The caller's address: the peer itself, unless the peer is a trusted proxy; then the
    nearest address in `X-Forwarded-For` (read from the right) that is not a trusted proxy.
    Entries left of that one were written by the client and prove nothing."""
    if not trusted.trust(peer):
        return peer
    hops: Sequence[str] = [
        hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()
    ]
    address = peer
    for hop in reversed(hops):
        address = hop[:64]  # an address is short; a client's garbage need not be kept
        if not trusted.trust(hop):
            break
    return address

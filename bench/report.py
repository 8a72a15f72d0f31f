"""The results as one table (terminal, via rich; markdown for the README), a JSON file and
a plot, under bench/results/ (timestamped, and `latest.*`)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

COLUMNS = ("section", "side", "throughput", "latency", "ratio")
Row = tuple[str, str, str, str, str]


def _n(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _failed(section: dict[str, Any] | None) -> str | None:
    if section is None:
        return "not run"
    if "error" in section:
        return f"failed: {section['error']}"
    if "skipped" in section:
        return f"skipped: {section['skipped']}"
    return None


def rows(results: dict[str, Any]) -> list[Row]:
    table: list[Row] = []
    table += _read_rows(results.get("reads"))
    table += _checkout_rows(results.get("saturation"), results.get("monolith"))
    table += _rabbitmq_checkout_rows(results.get("rabbitmq"), results.get("saturation"))
    table += _cpu_rows(results.get("saturation"), results.get("monolith"))
    table += _fixed_rate_rows(results.get("half_saturation"), "half saturation")
    table += _fixed_rate_rows(results.get("fixed_rate"), "fixed rate")
    table += _tracing_rows(results.get("tracing"))
    table += _fsync_rows(results.get("fsync"))
    table += _cluster_rows(results.get("cluster"))
    table += _bus_rows(results.get("bus"))
    table += _rabbitmq_bus_rows(results.get("rabbitmq"))
    table += _memory_rows(results.get("memory"))
    table += _idle_cpu_rows(results.get("idle_cpu_pct"))
    table += _baseline_rows(results.get("baseline"))
    table += target_rows(results)
    return table


# The performance targets the README states, each read from this run: (what, the
# reading, how it compares, the bound).
def targets(results: dict[str, Any]) -> list[tuple[str, float | None, str, float]]:
    saturation = results.get("saturation") or {}
    monolith = results.get("monolith") or {}
    platform_cpu = saturation.get("cpu_ms_per_paid_order_platform")
    monolith_cpu = monolith.get("cpu_ms_per_order")
    after = (results.get("memory") or {}).get("after_saturation") or {}
    return [
        (
            "CPU per paid order / monolith's",
            platform_cpu / monolith_cpu if platform_cpu and monolith_cpu else None,
            "<=",
            8.0,
        ),
        ("checkout throughput / monolith's", saturation.get("bazaar_over_monolith"), ">=", 0.25),
        (
            "catalog read gateway/direct",
            (results.get("reads") or {}).get("gateway_over_direct"),
            ">=",
            0.9,
        ),
        (
            "p99 ms at half saturation",
            (results.get("half_saturation") or {}).get("paid_p99_ms"),
            "<",
            100.0,
        ),
        ("RSS MiB after saturation", after.get("total"), "<", 1024.0),
    ]


def target_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for what, reading, compare, bound in targets(results):
        if reading is None or (isinstance(reading, float) and math.isnan(reading)):
            continue
        met = {"<=": reading <= bound, ">=": reading >= bound, "<": reading < bound}[compare]
        rows.append(
            (
                "targets" if not rows else "",
                what,
                _n(reading, 2 if reading < 10 else 0),
                f"{compare} {_n(bound, 2 if bound < 10 else 0)}",
                "met" if met else "missed",
            )
        )
    return rows


def _baseline_rows(base: dict[str, Any] | None) -> list[Row]:
    """Only when a commit was named (`--baseline REV`)."""
    if base is None:
        return []
    problem = _failed(base)
    if problem:
        return [("against a baseline", "", problem, "", "")]
    title = f"against {base['commit'][:10]}"
    table: list[Row] = [
        (
            title if i == 0 else "",
            name,
            f"{_n(base[name]['paid_per_s'], 1)} paid/s",
            f"p50 {_n(base[name]['paid_p50_ms'])} ms, "
            f"{_n(base[name]['cpu_ms_per_paid_order'], 1)} ms CPU / paid order",
            f"throughput current/baseline {_n(base['throughput_current_over_baseline'], 3)}"
            if i == 0
            else f"CPU current/baseline {_n(base['cpu_current_over_baseline'], 3)}",
        )
        for i, name in enumerate(("current", "baseline"))
    ]
    table += [
        (
            "",
            f"{name} at {_n(rate['rate'], 1)}/s",
            f"{_n(rate['paid_per_s'], 1)} paid/s",
            f"p50 {_n(rate['paid_p50_ms'])} / p99 {_n(rate['paid_p99_ms'])} ms",
            f"p99 current/baseline {_n(base['fixed_rate_p99_current_over_baseline'], 3)}"
            if i == 0
            else "",
        )
        for i, name in enumerate(("current", "baseline"))
        if (rate := base[name].get("fixed_rate"))
    ]
    read = base["reads"]["sides"]
    table.append(
        (
            "",
            "catalog read via gateway",
            f"current {_n(read['current']['rps'])} / baseline {_n(read['baseline']['rps'])} req/s",
            "",
            f"current/baseline {_n(base['reads_current_over_baseline'], 3)}",
        )
    )
    for moment, taken in base["memory"].items():
        table.append(
            (
                "",
                f"RSS {moment.replace('_', ' ')}",
                f"current {_n(taken['current']['total'])} / baseline "
                f"{_n(taken['baseline']['total'])} MiB",
                "",
                f"current/baseline {_n(base['rss_current_over_baseline'][moment], 3)}",
            )
        )
    return table


def _idle_cpu_rows(idle: dict[str, float] | None) -> list[Row]:
    if not idle:
        return []
    busiest = sorted(((k, v) for k, v in idle.items() if k != "total"), key=lambda kv: -kv[1])
    return [
        (
            "CPU at idle",
            "% of one core",
            f"{_n(idle['total'], 1)} % total",
            ", ".join(f"{k} {_n(v, 1)}" for k, v in busiest[:3]),
            "",
        )
    ]


def _read_rows(reads: dict[str, Any] | None) -> list[Row]:
    problem = _failed(reads)
    if problem or reads is None:
        return [("catalog read", "", problem or "", "", "")]
    sides = reads["sides"]
    ratios = {
        "gateway": f"gateway/direct {_n(reads.get('gateway_over_direct'), 2)}",
        "direct": f"direct/floor {_n(reads.get('direct_over_floor'), 2)}",
    }
    labels = {"gateway": "via gateway", "direct": "catalog direct", "floor": "ASGI floor"}
    return [
        (
            "catalog read" if i == 0 else "",
            labels.get(name, name),
            f"{_n(side['rps'])} req/s",
            f"p50 {_n(side['p50_ms'], 1)} / p99 {_n(side['p99_ms'], 1)} ms",
            ratios.get(name, ""),
        )
        for i, (name, side) in enumerate(sides.items())
    ]


def _checkout_rows(saturation: dict[str, Any] | None, monolith: dict[str, Any] | None) -> list[Row]:
    table: list[Row] = []
    problem = _failed(saturation)
    if problem or saturation is None:
        table.append(("checkout, saturation", "Bazaar", problem or "", "", ""))
    else:
        table.append(
            (
                "checkout, saturation",
                f"Bazaar ({saturation['shoppers']} shoppers)",
                f"{_n(saturation['paid_per_s'], 1)} paid/s",
                f"p50 {_n(saturation['paid_p50_ms'])} / p99 {_n(saturation['paid_p99_ms'])} ms",
                f"Bazaar/monolith {_n(saturation.get('bazaar_over_monolith'), 3)}",
            )
        )
    problem = _failed(monolith)
    if problem or monolith is None:
        table.append(("", "monolith", problem or "", "", ""))
    else:
        table.append(
            (
                "",
                "monolith (1 process, 1 tx)",
                f"{_n(monolith['orders_per_s'], 1)} paid/s",
                f"p50 {_n(monolith['p50_ms'], 1)} / p99 {_n(monolith['p99_ms'], 1)} ms",
                "",
            )
        )
    return table


def _cpu_rows(saturation: dict[str, Any] | None, monolith: dict[str, Any] | None) -> list[Row]:
    per_order = (saturation or {}).get("cpu_ms_per_paid_order")
    if not per_order or not saturation:
        return []
    heaviest = sorted(
        ((k, v) for k, v in per_order.items() if k != "bench client"), key=lambda kv: -kv[1]
    )
    baseline = (monolith or {}).get("cpu_ms_per_order")
    return [
        (
            "CPU per paid order",
            "Bazaar, all processes",
            f"{_n(saturation['cpu_ms_per_paid_order_platform'], 1)} ms",
            ", ".join(f"{k} {_n(v, 1)}" for k, v in heaviest[:4]),
            f"monolith {_n(baseline, 1)} ms"
            f" (x{_n(saturation['cpu_ms_per_paid_order_platform'] / baseline, 0)})"
            if baseline
            else "",
        )
    ]


def _fixed_rate_rows(fixed: dict[str, Any] | None, label: str) -> list[Row]:
    problem = _failed(fixed)
    if problem or fixed is None:
        return [(f"checkout, {label}", "", problem or "", "", "")]
    return [
        (
            f"checkout, {label} ({_n(fixed['rate'], 1)}/s)",
            f"Bazaar ({fixed['paid']}/{fixed['orders']} paid)",
            f"{_n(fixed['paid_per_s'], 1)} paid/s",
            f"p50 {_n(fixed['paid_p50_ms'])} / p95 {_n(fixed['paid_p95_ms'])}"
            f" / p99 {_n(fixed['paid_p99_ms'])} ms",
            f"{fixed['late_starts']} late starts",
        )
    ]


def _tracing_rows(traced: dict[str, Any] | None) -> list[Row]:
    problem = _failed(traced)
    if problem or traced is None:
        return [("checkout, tracing", "", problem or "", "", "")]
    ratios = {
        "off": f"throughput on/off {_n(traced['throughput_on_over_off'], 3)}",
        "on": f"CPU on/off {_n(traced['cpu_on_over_off'], 3)}",
    }
    labels = {"off": "tracing off", "on": "tracing on (as shipped)"}
    return [
        (
            "checkout, tracing" if i == 0 else "",
            labels[name],
            f"{_n(traced[name]['paid_per_s'], 1)} paid/s",
            f"{_n(traced[name]['cpu_ms_per_paid_order'], 1)} ms CPU / paid order",
            ratios[name],
        )
        for i, name in enumerate(("off", "on"))
    ]


def _fsync_rows(fsync: dict[str, Any] | None) -> list[Row]:
    problem = _failed(fsync)
    if fsync is None:
        return []
    if problem:
        return [("checkout, NATS fsync", "", problem, "", "")]
    ratios = {
        "always": f"throughput without/with {_n(fsync['throughput_default_over_always'], 3)}",
        "default": f"p50 without/with {_n(fsync['p50_default_over_always'], 3)}",
    }
    labels = {
        "always": "sync_interval: always",
        "default": "NATS default (bench only)",
    }
    return [
        (
            "checkout, NATS fsync" if i == 0 else "",
            labels[name],
            f"{_n(fsync[name]['paid_per_s'], 1)} paid/s",
            f"p50 {_n(fsync[name]['paid_p50_ms'])} ms, "
            f"{_n(fsync[name]['cpu_ms_per_paid_order'], 1)} ms CPU / paid order",
            ratios[name],
        )
        for i, name in enumerate(("always", "default"))
    ]


def _cluster_rows(cluster: dict[str, Any] | None) -> list[Row]:
    problem = _failed(cluster)
    if cluster is None:
        return []
    if problem:
        return [("checkout, topology", "", problem, "", "")]
    labels = {
        "embedded": "embedded (1 process each, SQLite)",
        "cluster": "cluster (2 replicas, PostgreSQL, 3 NATS)",
    }
    saturation = [
        (
            "checkout, topology" if i == 0 else "",
            f"{labels[name]}, saturation",
            f"{_n(cluster[name]['paid_per_s'], 1)} paid/s",
            f"p50 {_n(cluster[name]['paid_p50_ms'])} ms, "
            f"{_n(cluster[name]['cpu_ms_per_paid_order'], 1)} ms CPU / paid order"
            + (
                f" (x{_n(times, 1)} monolith)"
                if (times := cluster[name].get("cpu_over_monolith"))
                else ""
            ),
            f"cluster/embedded {_n(cluster['throughput_cluster_over_embedded'], 3)}"
            if i == 0
            else f"CPU cluster/embedded {_n(cluster['cpu_cluster_over_embedded'], 3)}",
        )
        for i, name in enumerate(("embedded", "cluster"))
    ]
    fixed = [
        (
            "",
            f"{labels[name]}, {_n(cluster['rate'])}/s",
            f"{_n(rate['paid_per_s'], 1)} paid/s ({rate['paid']}/{rate['orders']} paid)",
            f"p50 {_n(rate['paid_p50_ms'])} / p99 {_n(rate['paid_p99_ms'])} ms",
            f"p50 cluster/embedded {_n(cluster['fixed_rate_p50_cluster_over_embedded'], 3)}"
            if i == 0
            else f"{rate['late_starts']} late starts",
        )
        for i, name in enumerate(("embedded", "cluster"))
        if (rate := cluster[name].get("fixed_rate"))
    ]
    memory = cluster.get("cluster_rss_mib") or {}
    started = (
        [
            (
                "",
                "cluster: ready after, RSS",
                f"{_n(cluster.get('cluster_start_seconds'), 1)} s",
                f"idle {_n(memory['idle']['total'])} MiB, after the runs "
                f"{_n(memory['after']['total'])} MiB",
                f"{len(memory['idle']) - 1} processes",
            )
        ]
        if memory
        else []
    )
    return saturation + fixed + started


def _rabbitmq_checkout_rows(
    rabbitmq: dict[str, Any] | None, nats: dict[str, Any] | None
) -> list[Row]:
    """Checkout at saturation on RabbitMQ, under the NATS row, with their ratio."""
    problem = _failed(rabbitmq)
    if problem or rabbitmq is None:
        return [("checkout, saturation", "on RabbitMQ", problem or "", "", "")] if problem else []
    saturation = rabbitmq["saturation"]
    versus = ""
    if nats and "paid_per_s" in nats:
        versus = f"RabbitMQ/NATS {_n(saturation['paid_per_s'] / max(nats['paid_per_s'], 1e-9), 2)}"
    return [
        (
            "",
            f"on RabbitMQ ({saturation['shoppers']} shoppers)",
            f"{_n(saturation['paid_per_s'], 1)} paid/s",
            f"p50 {_n(saturation['paid_p50_ms'])} / p99 {_n(saturation['paid_p99_ms'])} ms",
            versus,
        )
    ]


def _rabbitmq_bus_rows(rabbitmq: dict[str, Any] | None) -> list[Row]:
    problem = _failed(rabbitmq)
    if problem or rabbitmq is None:
        return [("event bus, RabbitMQ", "", problem or "", "", "")] if problem else []
    return _bus_rows(rabbitmq["bus"], "event bus, RabbitMQ", "raw aio-pika")


def _bus_rows(
    bus: dict[str, Any] | None, section: str = "event bus", raw: str = "raw nats-py"
) -> list[Row]:
    problem = _failed(bus)
    if problem or bus is None:
        return [(section, "", problem or "", "", "")]
    labels = {"bus": "platform Bus", "raw": raw}
    return [
        (
            section if i == 0 else "",
            labels[name],
            f"{_n(side['consumed_per_s'])} ev/s",
            f"publish only {_n(side['published_per_s'])} ev/s",
            f"Bus/raw {_n(bus['bus_over_raw'], 2)}" if name == "bus" else "",
        )
        for i, (name, side) in enumerate(bus["sides"].items())
    ]


def _memory_rows(memory: dict[str, Any] | None) -> list[Row]:
    problem = _failed(memory)
    if problem or memory is None:
        return [("memory (RSS)", "", problem or "", "", "")]
    table: list[Row] = []
    for moment in ("idle", "after_saturation"):
        reading = memory.get(moment)
        if not reading:
            continue
        largest = sorted(
            ((k, v) for k, v in reading.items() if k != "total" and v), key=lambda kv: -kv[1]
        )[:3]
        table.append(
            (
                "memory (RSS)" if not table else "",
                moment.replace("_", " "),
                f"{_n(reading['total'])} MiB total",
                ", ".join(f"{k} {_n(v)}" for k, v in largest),
                f"{len(reading) - 1} processes",
            )
        )
    return table


def caption(results: dict[str, Any]) -> str:
    machine = results.get("machine", {})
    loads = [machine.get("load_average_at_start"), machine.get("load_average_at_end")]
    shown = " -> ".join(f"{load[0]:.1f}" for load in loads if load)
    return f"{machine.get('cpus', '?')} CPUs, load average (1 min) {shown or '?'}"


def print_table(results: dict[str, Any], console: Console | None = None) -> None:
    table = Table(
        title=f"Bazaar bench ({results.get('mode', '?')} run, {results.get('started_at', '')})",
        caption=caption(results),
    )
    for column in COLUMNS:
        table.add_column(column)
    for row in rows(results):
        table.add_row(*row)
    (console or Console()).print(table)


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"{results.get('mode', '?')} run, {results.get('started_at', '')}; {caption(results)}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += [
        "| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows(results)
    ]
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], folder: Path, stamp: str) -> dict[str, Path]:
    """The JSON, the markdown table and the plot, timestamped and as latest.*."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {
        "json": folder / f"bench-{stamp}.json",
        "md": folder / f"bench-{stamp}.md",
        "png": folder / f"bench-{stamp}.png",
    }
    written["json"].write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")
    written["md"].write_text(markdown(results))
    plot(results, written["png"])
    for kind, path in written.items():
        shutil.copyfile(path, folder / f"latest.{kind}")
    return written


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    timelines = results.get("timelines", {})
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, label in (("fixed_rate", "fixed rate"), ("saturation", "saturation")):
        latencies = sorted(timelines.get(name, {}).get("latency", []))
        if latencies:
            shares = [(i + 1) / len(latencies) for i in range(len(latencies))]
            left.step(
                [x * 1000 for x in latencies],
                shares,
                where="post",
                label=f"{label} ({len(latencies)} orders)",
            )
    left.set_xscale("log")
    left.set_xlabel("checkout -> paid (ms, log)")
    left.set_ylabel("share of orders")
    left.set_title("checkout latency distribution")
    left.grid(True, which="both", alpha=0.3)
    left.legend()
    for name, label in (("saturation", "saturation"), ("fixed_rate", "fixed rate")):
        paid_at = timelines.get(name, {}).get("paid_at", [])
        if paid_at:
            seconds = int(max(paid_at)) + 1
            per_second = [0] * seconds
            for moment in paid_at:
                per_second[int(moment)] += 1
            right.plot(range(seconds), per_second, label=label, drawstyle="steps-post")
    right.set_xlabel("seconds since the run's first checkout")
    right.set_ylabel("orders paid per second")
    right.set_ylim(bottom=0)
    right.set_title("throughput over time")
    right.grid(True, alpha=0.3)
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)

"""The bench's own parts, without a platform: statistics, the monolith baseline's
bookkeeping, the profile summary and the table."""

from __future__ import annotations

import math
from pathlib import Path

from sqlalchemy import func, select

from bazaar.platform.db import Database
from bazaar.platform.messaging_tables import outbox
from bench import monolith, profile, report, sides
from bench.stats import percentile, ratio


def test_percentiles_by_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    assert math.isnan(ratio(1.0, 0.0))


async def test_the_monolith_does_the_whole_checkout_in_one_transaction(tmp_path: Path) -> None:
    result = await monolith.run(tmp_path, orders_wanted=12, concurrency=3)

    assert result["orders"] == 12 and result["orders_per_s"] > 0
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'monolith.db'}")
    try:
        async with db.reading() as session:
            count = (
                await session.execute(select(func.count()).select_from(monolith.orders))
            ).scalar()
            paid = (
                await session.execute(select(func.count()).select_from(monolith.payments))
            ).scalar()
            left = (
                await session.execute(select(func.count()).select_from(monolith.carts))
            ).scalar()
            on_hand = (
                await session.execute(select(func.sum(monolith.products.c.on_hand)))
            ).scalar()
            events = (
                await session.execute(
                    select(outbox.c.event_type, func.count()).group_by(outbox.c.event_type)
                )
            ).all()
    finally:
        await db.dispose()
    assert (count, paid, left) == (12, 12, 0)
    assert on_hand == monolith.PRODUCTS * monolith.STOCK - 12 * monolith.LINES_PER_ORDER
    assert dict(events) == {
        "order.created": 12,
        "order.paid": 12,
        "stock.changed": 12 * monolith.LINES_PER_ORDER,
    }


def test_a_profile_summary_names_functions_and_libraries(tmp_path: Path) -> None:
    raw = tmp_path / "profile-order.txt"
    raw.write_text(
        "run (asyncio/base_events.py:1);handle (bazaar/services/order/app.py:3);"
        "execute (site-packages/sqlalchemy/engine/base.py:9) 30\n"
        "run (asyncio/base_events.py:1);select (/usr/lib/python3.11/selectors.py:468) 10\n"
        "run (asyncio/base_events.py:1);_path_stat (<frozen importlib._bootstrap_external>:140) 5\n"
        "run (asyncio/base_events.py:1);_run_once (asyncio/base_events.py:1884) 5\n"
    )

    summary = profile.summarise(raw)

    assert summary["samples"] == 50
    assert summary["self_pct"][0] == ["execute (engine/base.py)", 60.0]
    assert summary["library_pct"] == [
        ["sqlalchemy", 60.0],
        ["selectors", 20.0],
        ["importlib", 10.0],
        ["asyncio", 10.0],
    ]
    assert summary["bazaar_deepest_pct"] == [["handle (order/app.py)", 60.0]]


def test_the_table_says_which_sections_failed() -> None:
    results = {
        "reads": {"error": "ConnectError: refused"},
        "bus": {"skipped": "no broker address"},
        "monolith": {"orders_per_s": 250.0, "p50_ms": 3.0, "p99_ms": 9.0},
    }

    table = report.markdown(results)

    assert "failed: ConnectError: refused" in table
    assert "skipped: no broker address" in table
    assert "250.0 paid/s" in table
    assert "not run" in table  # saturation, fixed rate and memory never ran


def _side(name: str, paid_per_s: list[float], cpu: list[float]) -> sides.Side:
    side = sides.Side(name, shop=None, pids={})  # type: ignore[arg-type]  # never shops here
    side.paid_per_s, side.cpu_ms_per_order = paid_per_s, cpu
    side.p50_ms = [100.0 for _ in paid_per_s]
    side.fixed_rate = {"rate": 5.0, "paid_per_s": 5.0, "paid_p50_ms": 40.0, "paid_p99_ms": 80.0}
    return side


def test_sides_are_compared_by_the_medians_of_their_rounds() -> None:
    rounds = sides.Rounds(count=3, orders=100, shoppers=8)
    current = _side("current", [10.0, 30.0, 20.0], [40.0, 10.0, 20.0])
    baseline = _side("baseline", [10.0, 10.0, 11.0], [40.0, 45.0, 50.0])
    baseline.fixed_rate = {**baseline.fixed_rate, "paid_p99_ms": 160.0}

    result = sides.compare([current, baseline], rounds, "current", "baseline")

    assert result["current"]["paid_per_s"] == 20.0 and result["baseline"]["paid_per_s"] == 10.0
    assert result["throughput_current_over_baseline"] == 2.0
    assert result["cpu_current_over_baseline"] == 0.444  # 20 ms against 45 ms
    assert result["fixed_rate_p99_current_over_baseline"] == 0.5


def test_a_baseline_comparison_gets_its_rows_and_none_without_one() -> None:
    rounds = sides.Rounds(count=1, orders=10, shoppers=2)
    compared = sides.compare(
        [_side("current", [20.0], [20.0]), _side("baseline", [10.0], [40.0])],
        rounds,
        "current",
        "baseline",
    )
    reads = {"current": {"rps": 300.0}, "baseline": {"rps": 200.0}}
    memory = {"idle": {"current": {"total": 900.0}, "baseline": {"total": 1000.0}}}
    base = {
        **compared,
        "commit": "0123456789abcdef",
        "reads": {"sides": reads},
        "reads_current_over_baseline": 1.5,
        "memory": memory,
        "rss_current_over_baseline": {"idle": 0.9},
    }

    table = report.markdown({"baseline": base})

    assert "against 0123456789" in table
    assert "throughput current/baseline 2.000" in table
    assert "CPU current/baseline 0.500" in table
    assert "current 300 / baseline 200 req/s" in table
    assert "current/baseline 0.900" in table
    assert "against" not in report.markdown({})


def test_the_targets_are_judged_from_the_run_and_left_out_when_not_measured() -> None:
    results = {
        "saturation": {"cpu_ms_per_paid_order_platform": 20.0, "bazaar_over_monolith": 0.2},
        "monolith": {"cpu_ms_per_order": 2.0},
        "memory": {"after_saturation": {"total": 990.0}},
    }

    rows = report.target_rows(results)

    assert rows == [
        ("targets", "CPU per paid order / monolith's", "10", "<= 8.00", "missed"),
        ("", "checkout throughput / monolith's", "0.20", ">= 0.25", "missed"),
        ("", "RSS MiB after saturation", "990", "< 1,024", "met"),
    ]  # gateway/direct and the half-saturation p99 were not measured: no rows

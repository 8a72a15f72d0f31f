"""`python -m bench --smoke` against a real embedded platform: every section runs and
writes its numbers, the JSON and the plot. No assertion here is about speed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.system

# The README promises the embedded platform in under 1 GiB of RSS, all processes together,
# as `make up` runs it (tracing on). Idle is the reading a smoke run can take fairly.
IDLE_RSS_LIMIT_MIB = 1024


def numbers(section: dict[str, Any], *keys: str) -> list[float]:
    values = [section[key] for key in keys]
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in values), (keys, values)
    return values


@pytest.mark.timeout(400)
def test_every_section_produces_numbers_and_files(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--results", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=380,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    assert (tmp_path / "latest.png").stat().st_size > 0
    assert list(tmp_path.glob("bench-*.json")) and list(tmp_path.glob("bench-*.png"))

    reads = results["reads"]
    assert set(reads["sides"]) == {"gateway", "direct", "floor"}
    for side in reads["sides"].values():
        assert side["requests"] > 0
        numbers(side, "rps", "p50_ms", "p99_ms")
    numbers(reads, "gateway_over_direct", "direct_over_floor")

    saturation = results["saturation"]
    assert saturation["paid"] > 0
    numbers(saturation, "paid_per_s", "paid_p50_ms", "paid_p99_ms", "bazaar_over_monolith")
    numbers(results["monolith"], "orders_per_s", "p50_ms", "p99_ms", "cpu_ms_per_order")
    numbers(saturation, "cpu_ms_per_paid_order_platform")

    fixed = results["fixed_rate"]
    assert fixed["paid"] > 0
    numbers(fixed, "paid_p50_ms", "paid_p95_ms", "paid_p99_ms")

    bus = results["bus"]
    for side in bus["sides"].values():
        numbers(side, "published_per_s", "consumed_per_s")
    numbers(bus, "bus_over_raw")

    for moment in ("idle", "after_saturation"):
        memory = results["memory"][moment]
        assert {"gateway", "order", "inventory", "nats", "total"} <= set(memory)
        assert memory["total"] > 0
    idle = results["memory"]["idle"]
    assert idle["total"] <= IDLE_RSS_LIMIT_MIB, f"idle RSS over 1 GiB: {idle}"
    assert "| catalog read |" in (tmp_path / "latest.md").read_text()

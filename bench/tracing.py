"""What tracing costs a checkout: two embedded platforms side by side, the bench's own
(tracing as `make up` runs it: every checkout traced, exported over OTLP/HTTP to the local
trace store) and one more with tracing off (`OTEL_SDK_DISABLED=true`: no instrumentation
at all). Rounds of closed-loop checkouts alternate between them (`bench/sides.py`); a
side's CPU is that of all its processes (the ops server receiving the spans included)
per paid order. The ratios are on over off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench import sides
from bench.sizes import Sizes
from bench.target import TRACING_OFF, Target, extra_platform

Say = Callable[[str], None]


async def measure(on: Target, sizes: Sizes, say: Say) -> dict[str, Any]:
    rounds = sides.Rounds(sizes.tracing_rounds, sizes.tracing_orders, sizes.tracing_shoppers)
    say("  starting a second platform, tracing off")
    with extra_platform(TRACING_OFF, say) as off:
        async with sides.opened([("off", off), ("on", on)], sizes, rounds) as both:
            await sides.alternate(both, sizes, rounds, say)
    return sides.compare(both, rounds, "on", "off")

"""The same measurements on RabbitMQ, beside the NATS ones of the main run: the bus
section (platform Bus against raw aio-pika) and checkout at saturation on a second
embedded platform whose services use RabbitMQ (BAZAAR_BROKER_URL=amqp://...).

The RabbitMQ is BAZAAR_BENCH_RABBITMQ_URL, or a private node of Debian's rabbitmq-server
started for the section (`bazaar.testing.rabbitmq`: every path under a temporary folder);
without either the section is skipped, saying why.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bazaar.testing.rabbitmq import RABBITMQ_SERVER, RabbitMQServer
from bench import checkout, messaging, procfs
from bench.sizes import Sizes
from bench.target import extra_platform

URL_VARIABLE = "BAZAAR_BENCH_RABBITMQ_URL"


@contextmanager
def rabbitmq(say: Callable[[str], None]) -> Iterator[str]:
    given = os.environ.get(URL_VARIABLE, "")
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="bazaar-bench-rabbitmq-") as folder:
        server = RabbitMQServer(Path(folder))
        say(f"  starting a RabbitMQ node on {server.url}")
        server.start()
        try:
            yield server.url
        finally:
            server.close()


def available() -> str:
    """Why the section cannot run here ("" if it can)."""
    if os.environ.get(URL_VARIABLE) or os.access(RABBITMQ_SERVER, os.X_OK):
        return ""
    return f"no RabbitMQ: set {URL_VARIABLE} or apt-get install rabbitmq-server"


async def measure(sizes: Sizes, say: Callable[[str], None]) -> dict[str, Any]:
    with rabbitmq(say) as url:
        say("  the bus on RabbitMQ")
        bus = await messaging.measure(url, sizes)
        with extra_platform({"BAZAAR_BROKER_URL": url}, say) as target:
            say(f"  {sizes.saturation_orders} orders on the platform over RabbitMQ")
            store = await checkout.open_shop(target.public_url, sizes)
            cpu_before = procfs.cpu(target.pids)
            placed = await checkout.saturation(store, sizes)
            cpu_after = procfs.cpu(target.pids)
            await store.http.aclose()
    result = {**checkout.throughput(placed), **checkout.summary(placed)}
    paid = max(1, result["paid"])
    result["shoppers"] = len(store.shoppers)
    result["cpu_ms_per_paid_order_platform"] = round(
        sum(1000 * (cpu_after[n] - cpu_before[n]) / paid for n in cpu_after if n in cpu_before), 2
    )
    return {"bus": bus, "saturation": result}

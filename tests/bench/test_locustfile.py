"""The locustfile loads and describes a shopper with every behaviour it promises. Locust
patches the standard library (gevent) when imported, so this looks at it from a child
process rather than in the test process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

INSPECT = """
import json, runpy
from locust import HttpUser
module = runpy.run_path("locustfile.py")
users = {
    name: sorted(getattr(t, "__name__", str(t)) for t in value.tasks)
    for name, value in module.items()
    if isinstance(value, type) and issubclass(value, HttpUser) and value is not HttpUser
}
wait = {name: module[name].wait_time(None) for name in users} if users else {}
print(json.dumps({"users": users, "wait": wait}))
"""


def test_the_shopper_browses_searches_buys_and_looks_at_orders() -> None:
    done = subprocess.run(
        [sys.executable, "-c", INSPECT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(found["users"]) == ["Shopper"]
    tasks = set(found["users"]["Shopper"])
    assert {"browse", "search", "view_product", "add_to_cart", "checkout", "view_orders"} <= tasks
    assert 1 <= found["wait"]["Shopper"] <= 5

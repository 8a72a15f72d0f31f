"""The platform under test: a fresh embedded one in a temporary home (the default), or
one already running, named by `BAZAAR_BENCH_URL` (its gateway) and/or `BAZAAR_BENCH_HOME`
(a home whose `runner.json` gives the internal addresses and pids)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bazaar.runner.platform import Platform
from bazaar.runner.ports import free_ports
from bazaar.runner.state import read_state, running_runner

START_TIMEOUT = 180.0

# The bench platform must not throttle its own load generator (each shopper checks out
# again as soon as its order is paid; 48 of them sign up from one address).
GENEROUS_LIMITS = {
    "BAZAAR_CHECKOUT_RATE": "1000000/second",
    "BAZAAR_SIGNUP_RATE_PER_ADDRESS": "1000000/hour",
    "BAZAAR_LOGIN_RATE_PER_ADDRESS": "1000000/hour",
    "BAZAAR_LOGIN_RATE_PER_ACCOUNT": "1000000/hour",
}


# Every section measures the platform as `make up` runs it: tracing on at the default
# sampling (every checkout, exported to the local trace store). The tracing section
# compares it with one more platform whose tracing is off (bench/tracing.py).
AS_SHIPPED: dict[str, str] = {}
TRACING_OFF = {"OTEL_SDK_DISABLED": "true"}


class TargetError(Exception):
    """The platform to measure could not be started or found."""


@dataclass
class Target:
    public_url: str
    # name -> http://host:port (HTTP services) or host:port (gRPC), nats://... for nats
    urls: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    embedded: bool = True

    @property
    def broker_url(self) -> str | None:
        return self.urls.get("nats")

    def url(self, name: str) -> str | None:
        return self.urls.get(name)


@contextmanager
def open_target(say: Callable[[str], None] = print) -> Iterator[Target]:
    url = os.environ.get("BAZAAR_BENCH_URL", "").rstrip("/")
    home = os.environ.get("BAZAAR_BENCH_HOME", "")
    if url or home:
        yield attach(url, Path(home) if home else None)
        return
    with tempfile.TemporaryDirectory(prefix="bazaar-bench-") as folder:
        say(f"starting the embedded platform in {folder}")
        with _started(Path(folder), AS_SHIPPED) as target:
            yield target


@contextmanager
def extra_platform(env: dict[str, str], say: Callable[[str], None] = print) -> Iterator[Target]:
    """One more embedded platform, `env` added to its processes' environment."""
    with tempfile.TemporaryDirectory(prefix="bazaar-bench-") as folder:
        say(f"  starting another embedded platform in {folder}")
        with _started(Path(folder), env) as target:
            yield target


@contextmanager
def _started(folder: Path, env: dict[str, str]) -> Iterator[Target]:
    platform = Platform(folder / "home", free_ports(1)[0], extra_env={**GENEROUS_LIMITS, **env})
    try:
        platform.start(timeout=START_TIMEOUT)
    except Exception as exc:
        raise TargetError(f"the platform did not start: {exc}") from exc
    try:
        yield Target(
            public_url=platform.public_url,
            urls=platform.urls,
            pids={name: pid for name, pid in platform.pids.items() if pid},
        )
    finally:
        platform.stop()


def attach(url: str, home: Path | None) -> Target:
    """A running platform: its gateway, and what its runner.json tells, if given."""
    if home is None:
        return Target(public_url=url, embedded=False)
    state = read_state(home / "runner.json")
    if not state or not running_runner(home / "runner.json"):
        raise TargetError(f"no running platform in {home} (no live runner in runner.json)")
    processes = state.get("processes") or []
    return Target(
        public_url=url or str(state.get("public_url", "")),
        urls={p["name"]: p["url"] for p in processes if p.get("url")},
        pids={p["name"]: p["pid"] for p in processes if isinstance(p.get("pid"), int)},
        embedded=False,
    )

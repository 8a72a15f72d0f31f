"""A real Prometheus (Debian's) watches the platform through the targets the runner
writes, with deploy/prometheus's rules, while the payment processor is down: it scrapes
every service process, and the order service's open breaker on payment makes
BazaarCircuitBreakerOpen fire.

The rules are the shipped ones, with every `for:` cut to a few seconds and Prometheus
scraping and evaluating every second; the expressions are untouched."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bazaar.runner.platform import Platform
from bazaar.runner.scrape import targets_file
from bazaar.runner.topology import SERVICES
from bazaar.testing import free_port, require_program

from .shop import Batch, Shopper, checkout, client, products, set_carts

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"
SHORT_FOR = "3s"
SHOPPERS = 8  # more charges than the breaker's threshold (5 failures)
PLATFORM_ENV = {
    # The orders wait out the whole test for their payment (no cancellation meanwhile).
    "BAZAAR_PAYMENT_DEADLINE_SECONDS": "300",
    "BAZAAR_PAYMENT_TIMEOUT_SECONDS": "1",
}
BREAKER_ALERT = {"alertname": "BazaarCircuitBreakerOpen", "service": "order", "target": "payment"}


def rules_with_short_for(folder: Path) -> list[Path]:
    """A copy of each rule file in `folder`, every `for:` cut to SHORT_FOR."""
    copies = []
    for source in sorted(RULES.glob("*.yml")):
        rules = yaml.safe_load(source.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = SHORT_FOR
        copy = folder / source.name
        copy.write_text(yaml.safe_dump(rules, sort_keys=False))
        copies.append(copy)
    return copies


def configuration(folder: Path, targets: Path) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rules_with_short_for(folder)],
        "scrape_configs": [{"job_name": "bazaar", "file_sd_configs": [{"files": [str(targets)]}]}],
    }
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def prometheus(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus on a free loopback port with its storage in a temporary folder; yields
    its URL once it is ready."""
    binary = require_program("/usr/bin/prometheus", "Prometheus", "prometheus")
    folder = tmp_path_factory.mktemp("prometheus")
    url = f"http://127.0.0.1:{free_port()}"
    command = [
        binary,
        f"--config.file={configuration(folder, targets_file(platform.home))}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address={url.removeprefix('http://')}",
    ]
    log = (folder / "prometheus.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(url, process, folder / "prometheus.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"prometheus exited:\n{log.read_text()}"
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"prometheus not ready within 30 s:\n{log.read_text()}")


async def api_get(prometheus: httpx.AsyncClient, path: str, **params: str) -> Any:
    response = await prometheus.get(f"/api/v1/{path}", params=params)
    response.raise_for_status()
    return response.json()["data"]


async def every_service_scraped(prometheus: httpx.AsyncClient, patience: float = 30.0) -> None:
    """Every service process is a target, labelled by its service, and answers."""
    wanted = {s.name for s in SERVICES}
    give_up_at = time.monotonic() + patience
    while True:
        targets = (await api_get(prometheus, "targets"))["activeTargets"]
        up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
        if up == wanted and len(targets) == len(wanted):
            return
        assert time.monotonic() < give_up_at, [
            (t["labels"], t["health"], t["lastError"]) for t in targets
        ]
        await asyncio.sleep(0.5)


async def firing(prometheus: httpx.AsyncClient) -> list[dict[str, str]]:
    alerts = (await api_get(prometheus, "alerts"))["alerts"]
    return [a["labels"] for a in alerts if a["state"] == "firing"]


async def set_mode(payment: httpx.AsyncClient, mode: str) -> None:
    response = await payment.put("/internal/mode", json={"mode": mode})
    assert response.status_code == 200 and response.json()["mode"] == mode, response.text


async def test_a_payment_outage_fires_the_breaker_alert_in_prometheus(
    prometheus: str,
    platform: Platform,
    shoppers: list[Shopper],
    api: httpx.AsyncClient,
    payment: httpx.AsyncClient,
) -> None:
    async with client(prometheus) as prom:
        await every_service_scraped(prom)
        assert await firing(prom) == []  # a healthy platform alerts nobody
        await set_carts(api, shoppers, {(await products(api))[0]["id"]: 1})

        await set_mode(payment, "outage")
        outage_at = time.monotonic()
        try:
            batch = Batch()
            await asyncio.gather(*(checkout(api, s, batch) for s in shoppers))
            alerts = await firing(prom)
            while not any(BREAKER_ALERT.items() <= a.items() for a in alerts):
                assert time.monotonic() - outage_at < 120, f"no breaker alert; firing: {alerts}"
                await asyncio.sleep(0.5)
                alerts = await firing(prom)
            fired_after = time.monotonic() - outage_at
        finally:
            await set_mode(payment, "ok")

    names = sorted({a["alertname"] for a in alerts})
    print(
        f"\nbreaker alert firing {fired_after:.1f} s after the outage began "
        f"(scrape and evaluation every 1 s, `for` {SHORT_FOR}); firing then: {names}"
    )
    breaker = next(a for a in alerts if BREAKER_ALERT.items() <= a.items())
    assert breaker["severity"] == "page"
    assert "BazaarProcessDown" not in names

"""System tests: the whole platform as real processes (nats-server, SMTP sink, every
service), started once per session in a temporary home on a free public port; once per
broker for a module that lists them in `BROKERS` (a RabbitMQ node of its own). A browser
test gets `page`: a page of a headless Chromium on the platform's public URL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from bazaar.runner.platform import Platform, StartupError
from bazaar.runner.ports import free_ports
from bazaar.testing import require_program
from bazaar.testing.platform_broker import PlatformBroker

if TYPE_CHECKING:
    # Imported where they are used: only the browser tests load Playwright.
    from playwright.sync_api import Browser, Page

START_TIMEOUT = 90.0

# As a probe found on these machines: without the background-networking flags Chromium
# keeps trying hosts this closed network refuses.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module lists the brokers it runs on in `BROKERS` (default: NATS only)."""
    if "broker" in metafunc.fixturenames:
        kinds = getattr(metafunc.module, "BROKERS", ("nats",))
        metafunc.parametrize("broker_kind", kinds, scope="session")


@pytest.fixture(scope="session")
def broker(broker_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformBroker]:
    """The platform's broker: the nats-server the runner starts, or a RabbitMQ node."""
    with PlatformBroker.running(broker_kind, tmp_path_factory.mktemp(broker_kind)) as broker:
        yield broker


@pytest.fixture(scope="session")
def platform(
    tmp_path_factory: pytest.TempPathFactory, broker: PlatformBroker
) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("bazaar") / "home"
    platform = Platform(home, free_ports(1)[0], extra_env=broker.env)
    broker.platform = platform
    try:
        platform.start(timeout=START_TIMEOUT)
    except StartupError as exc:
        # The message names the processes that did not get ready, with their log tails.
        pytest.fail(f"the platform did not start (home {home}):\n{exc}", pytrace=False)
    yield platform
    platform.stop()


@pytest.fixture
def api(platform: Platform) -> Iterator[httpx.Client]:
    """A client of the public API, through the gateway (no proxy from the environment)."""
    with httpx.Client(base_url=platform.public_url, timeout=10.0, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The system's Chromium, headless, one per module (missing: skipped, failed in CI)."""
    from playwright.sync_api import sync_playwright

    chromium = require_program("/usr/bin/chromium", "Chromium", "chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, platform: Platform) -> Iterator[Page]:
    """A page in a browser context of its own on the gateway; in the module's `VIEWPORT`
    if it sets one (else Playwright's default)."""
    viewport = getattr(request.module, "VIEWPORT", None)
    options = {"viewport": viewport} if viewport else {}
    context = browser.new_context(base_url=platform.public_url, **options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()

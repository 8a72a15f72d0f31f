"""deploy/prometheus: the scrape configurations and rules pass `promtool check`, the rules
pass their unit tests (`promtool test rules`), every alert has one, and every metric the
rules read is one the services export (a renamed metric would silence an alert)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from bazaar.platform import metrics
from bazaar.testing import require_program

from .tools import DEPLOY, run

PROMETHEUS = DEPLOY / "prometheus"
CONFIGURATIONS = sorted(PROMETHEUS.glob("*.yml"))
RULES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
# What issue 12 asks to be alerted on, by the rules' names.
REQUIRED_ALERTS = {
    "BazaarSagaStuck",
    "BazaarOutboxLagging",
    "BazaarDeadLettersGrowing",
    "BazaarCircuitBreakerOpen",
    "BazaarHttp5xxRatioHigh",
    "BazaarCheckoutLatencyBudgetBurnFast",
    "BazaarCheckoutLatencyBudgetBurnSlow",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_program("/usr/bin/promtool", "promtool", "prometheus")


def rules() -> list[dict[str, Any]]:
    return [rule for path in RULES for group in load(path)["groups"] for rule in group["rules"]]


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


@pytest.mark.parametrize("configuration", CONFIGURATIONS, ids=lambda p: p.name)
def test_the_scrape_configuration_is_valid(promtool: str, configuration: Path) -> None:
    run(promtool, "check", "config", str(configuration))


def test_the_rules_are_valid(promtool: str) -> None:
    run(promtool, "check", "rules", *map(str, RULES))


def test_the_rules_pass_their_unit_tests(promtool: str) -> None:
    # promtool reads rule_files relative to the test file's folder.
    run(promtool, "test", "rules", *map(str, RULE_TESTS))


def test_every_alert_the_issue_asks_for_exists_and_has_a_unit_test() -> None:
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts >= REQUIRED_ALERTS
    tested = {
        case["alertname"]
        for path in RULE_TESTS
        for test in load(path)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")  # seen firing, not only quiet
    }
    assert alerts - tested == set()


def test_every_metric_the_rules_read_is_exported() -> None:
    exported = {
        name
        for metric in vars(metrics).values()
        if isinstance(metric, MetricWrapperBase)
        for family in metric.describe()
        for name in _sample_names(family)
    }
    read = {name for rule in rules() for name in re.findall(r"\bbazaar_[a-z_]+\b", rule["expr"])}
    assert read and read - exported == set()


def _sample_names(family: Any) -> set[str]:
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}
    return {family.name + suffix for suffix in suffixes.get(family.type, [""])}

"""deploy/compose.yaml: valid against the Compose specification, and every service of the
topology there the way a platform team expects (two replicas, health check, start-up
order, migrations first, read-only, non-root)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from bazaar.runner.topology import SERVICES

from .tools import DEPLOY, run, tool

COMPOSE = DEPLOY / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_compose_file_fits_the_compose_specification() -> None:
    checker = tool("check-jsonschema", "check-jsonschema")
    run(checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE))


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_service_runs_twice_healthy_read_only_and_non_root(
    compose: dict[str, Any], service: Any
) -> None:
    spec = compose["services"][service.name]
    assert spec["command"] == ["serve", service.name]
    assert spec["deploy"]["replicas"] == 2
    assert "readyz" in " ".join(spec["healthcheck"]["test"])
    assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"]
    assert not spec["user"].startswith(("0", "root"))
    assert spec["deploy"]["resources"]["limits"]
    for dependency, condition in spec["depends_on"].items():
        assert condition["condition"] in {"service_healthy", "service_completed_successfully"}, (
            dependency
        )


@pytest.mark.parametrize("service", [s for s in SERVICES if s.database], ids=lambda s: s.name)
def test_a_service_starts_after_its_migration_and_its_own_database(
    compose: dict[str, Any], service: Any
) -> None:
    services = compose["services"]
    migration = services[f"migrate-{service.name}"]
    assert migration["command"] == ["migrate", service.name]
    assert migration["depends_on"]["postgres"]["condition"] == "service_healthy"
    url = services[service.name]["environment"]["BAZAAR_DATABASE_URL"]
    assert url == migration["environment"]["BAZAAR_DATABASE_URL"]
    assert url.endswith(f"/{service.name}")
    # Straight after its migration, or after the demo data that follows it.
    first = f"seed-{service.name}" if service.seed_file else f"migrate-{service.name}"
    assert services[service.name]["depends_on"][first] == {
        "condition": "service_completed_successfully"
    }


def test_only_auth_holds_the_key_secret(compose: dict[str, Any]) -> None:
    holders = {
        name
        for name, spec in compose["services"].items()
        if isinstance(spec.get("environment"), dict)
        and "BAZAAR_AUTH_KEY_SECRET" in spec["environment"]
    }
    assert holders == {"auth", "seed-auth"}


def test_the_infrastructure_is_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "mail", "proxy", "nats-1", "nats-2", "nats-3"} <= set(services)
    assert "sync_interval: always" in compose["configs"]["nats"]["content"]
    assert services["proxy"]["ports"] == ["8000:8000"]
    # Secrets come from the operator's environment, never from this file.
    assert "${BAZAAR_AUTH_KEY_SECRET:?" in COMPOSE.read_text()
    assert "${POSTGRES_PASSWORD:?" in COMPOSE.read_text()

"""deploy/k8s: both overlays render (`kubectl kustomize`), are valid Kubernetes for every
version we support (`kubernetes-validate --strict`), and hold the policy a platform team
would ask for. Each check runs on the rendered output, so a new service without probes,
limits or a network policy fails here."""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
import sys
from typing import Any

import pytest
import yaml

from bazaar.runner.topology import SERVICES

from .manifests import (
    K8S,
    OVERLAYS,
    WORKLOADS,
    Manifest,
    containers,
    declared_edges,
    named,
    of_kind,
    pod_edges,
    pod_spec,
    readme_diagram,
    render,
    topology,
)
from .tools import tool

# Kubernetes versions the manifests are validated against (grpc probes: 1.27 and later).
VERSIONS = tuple(f"1.{minor}.0" for minor in range(27, 38))
DATABASES = [s.name for s in SERVICES if s.database]
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def manifests(overlay: str) -> list[Manifest]:
    return render(overlay)


def test_generated_manifests_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(K8S / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_both_overlays_are_valid_kubernetes(version: str, tmp_path: Any) -> None:
    validator = tool("kubernetes-validate", "kubernetes-validate")
    files = []
    for overlay in OVERLAYS:
        path = tmp_path / f"{overlay}.yaml"
        path.write_text(yaml.safe_dump_all(render(overlay)))
        files.append(str(path))
    result = subprocess.run(
        [validator, "--strict", "--quiet", "-k", version, *files], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_an_unknown_field(tmp_path: Any) -> None:
    """So that a green validation means something: a typo of a field fails it."""
    validator = tool("kubernetes-validate", "kubernetes-validate")
    bad = copy.deepcopy(named(render("dev"), "Deployment", "cart"))
    pod_spec(bad)["containers"][0]["livenesProbe"] = {"tcpSocket": {"port": 8000}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = subprocess.run([validator, "--strict", str(path)], capture_output=True, text=True)
    assert result.returncode != 0


# --- every workload -----------------------------------------------------------------------


def test_every_workload_is_non_root_read_only_limited_and_pinned(
    manifests: list[Manifest],
) -> None:
    for workload in of_kind(manifests, *WORKLOADS):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] != 0, where
        assert pod.get("automountServiceAccountToken") is False, where
        for container in containers(workload):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), (where, bound)
            image = container["image"]
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            assert tag and tag != "latest", (where, image)


def test_every_long_running_container_has_the_three_probes(manifests: list[Manifest]) -> None:
    for workload in of_kind(manifests, "Deployment", "StatefulSet"):
        for container in containers(workload):
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, (workload["metadata"]["name"], probe)


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_service_is_deployed_probed_and_scraped(
    manifests: list[Manifest], service: Any
) -> None:
    deployment = named(manifests, "Deployment", service.name)
    container = pod_spec(deployment)["containers"][0]
    assert container["args"] == ["serve", service.name]
    if service.kind == "grpc":  # inventory: gRPC health, and /readyz on its ops port
        assert "grpc" in container["livenessProbe"]
    else:
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    ports = {p["containerPort"] for p in container["ports"]}
    assert int(annotations["prometheus.io/port"]) in ports
    assert named(manifests, "Service", service.name)
    assert named(manifests, "NetworkPolicy", service.name)


def test_every_database_is_migrated_by_a_job(manifests: list[Manifest]) -> None:
    for name in DATABASES:
        job = named(manifests, "Job", f"migrate-{name}")
        assert pod_spec(job)["containers"][0]["args"] == ["migrate", name]


def test_replicas_autoscaling_budgets_and_spread(overlay: str, manifests: list[Manifest]) -> None:
    for service in SERVICES:
        replicas = named(manifests, "Deployment", service.name)["spec"]["replicas"]
        if overlay == "dev":
            assert replicas == 1, service.name
            continue
        assert replicas >= 2, service.name
        assert named(manifests, "HorizontalPodAutoscaler", service.name)["spec"]["minReplicas"] >= 2
        assert named(manifests, "PodDisruptionBudget", service.name)
        spread = pod_spec(named(manifests, "Deployment", service.name))
        keys = {c["topologyKey"] for c in spread["topologySpreadConstraints"]}
        assert "kubernetes.io/hostname" in keys, service.name


def test_nats_is_a_three_node_jetstream_that_syncs_every_write(manifests: list[Manifest]) -> None:
    statefulset = named(manifests, "StatefulSet", "nats")
    assert statefulset["spec"]["replicas"] == 3
    config = next(
        c
        for c in of_kind(manifests, "ConfigMap")
        if c["metadata"]["name"].startswith("nats-config")
    )
    assert "sync_interval: always" in config["data"]["nats.conf"]


# --- secrets ------------------------------------------------------------------------------


def secret_values(manifests: list[Manifest]) -> set[str]:
    values = set()
    for secret in of_kind(manifests, "Secret"):
        values |= {base64.b64decode(v).decode() for v in secret.get("data", {}).values()}
        values |= set(secret.get("stringData", {}).values())
    return values


def test_no_secret_value_outside_secrets(manifests: list[Manifest]) -> None:
    others = json.dumps([m for m in manifests if m["kind"] != "Secret"])
    for value in secret_values(manifests):
        assert value not in others
    for config in of_kind(manifests, "ConfigMap"):
        for key, value in config.get("data", {}).items():
            assert not any(word in key for word in ("SECRET", "PASSWORD", "TOKEN")), key
            assert not CREDENTIALS_IN_URL.search(value), key


def test_services_get_only_their_own_database_secret(manifests: list[Manifest]) -> None:
    for service in SERVICES:
        sources = pod_spec(named(manifests, "Deployment", service.name))["containers"][0]["envFrom"]
        secrets = {
            s["secretRef"]["name"].split("-database")[0] for s in sources if "secretRef" in s
        }
        secrets = {name for name in secrets if not name.startswith("auth-keys")}
        assert secrets == ({service.name} if service.database else set()), service.name


# --- network policies ---------------------------------------------------------------------


def test_network_policies_allow_exactly_the_declared_edges(
    overlay: str, manifests: list[Manifest]
) -> None:
    ingress, egress = pod_edges(of_kind(manifests, "NetworkPolicy"))
    expected = declared_edges(topology(), overlay)
    assert ingress == expected, f"ingress: extra {ingress - expected}, missing {expected - ingress}"
    assert egress == expected, f"egress: extra {egress - expected}, missing {expected - egress}"


def test_everything_else_is_denied(manifests: list[Manifest]) -> None:
    deny = named(manifests, "NetworkPolicy", "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    for policy in of_kind(manifests, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            # Only the public gateway takes connections from anywhere.
            if "from" not in rule:
                assert policy["metadata"]["name"] == "gateway"


def test_the_declared_topology_is_the_readme_diagram() -> None:
    declared = topology()
    diagram = readme_diagram()
    calls = {(a, b) for a, callees in declared["calls"].items() for b in callees}
    assert calls == diagram.calls
    services = declared["services"]
    assert {name for name, s in services.items() if s.get("bus")} == diagram.bus
    assert {name for name, s in services.items() if s.get("public")} == diagram.public
    assert {name for name, s in services.items() if s.get("smtp")} == diagram.smtp
    assert set(services) == {s.name for s in SERVICES}

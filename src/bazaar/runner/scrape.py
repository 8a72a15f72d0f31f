"""What Prometheus should scrape, as the runner knows it: every service process (each
replica, in the cluster topology) with its /metrics address, in Prometheus's file-based
service discovery format (`file_sd_configs`), at `$BAZAAR_HOME/prometheus/targets.json`.

The runner rewrites the file whenever a process changes (a restart may not change its
port, but a new run picks new ones), and Prometheus re-reads it on change; the scrape
configuration that reads it is deploy/prometheus/prometheus.yml."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bazaar.runner.home import Home

SERVICE_MODULE = "bazaar.services."


def targets_file(home: Home) -> Path:
    return home.root / "prometheus" / "targets.json"


def scrape_targets(processes: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One target group per running service process (the runner.json entries): its health
    address serves /metrics too. `job` is the service, `process` the process (`order`, or
    `order-2` for a replica); neither clashes with the metrics' own `service` label."""
    groups = []
    for process in processes:
        service = _service_of(process.get("command") or [])
        health = urlsplit(str(process.get("health", "")))
        if service is None or health.scheme != "http" or process.get("state") == "stopped":
            continue
        labels = {"job": service, "process": str(process["name"])}
        groups.append({"targets": [health.netloc], "labels": labels})
    return groups


def write_targets(home: Home, processes: Iterable[Mapping[str, Any]]) -> None:
    """Replace the targets file (atomically: Prometheus may read it at any moment), only
    when what it says changed."""
    path = targets_file(home)
    text = json.dumps(scrape_targets(processes), indent=2) + "\n"
    try:
        if path.read_text() == text:
            return
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _service_of(command: Iterable[str]) -> str | None:
    """`order` for `python -m bazaar.services.order` (its migrate and seed runs are not
    processes of the runner's); None for nats, the SMTP sink, a load balancer."""
    for flag, module in itertools.pairwise(command):
        if flag == "-m" and module.startswith(SERVICE_MODULE):
            return module.removeprefix(SERVICE_MODULE)
    return None

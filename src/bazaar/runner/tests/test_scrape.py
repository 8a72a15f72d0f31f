"""The runner's Prometheus targets: every running service process, nothing else."""

import json
from pathlib import Path

from bazaar.runner.home import Home
from bazaar.runner.scrape import scrape_targets, targets_file, write_targets

PYTHON = "/venv/bin/python"


def process(name: str, command: list[str], health: str, state: str = "ready") -> dict[str, object]:
    return {"name": name, "state": state, "health": health, "command": command}


PROCESSES = [
    process("nats", ["nats-server", "-js"], "http://127.0.0.1:8222/healthz"),
    process("smtp", [PYTHON, "-m", "bazaar.runner.smtp"], "tcp://127.0.0.1:2525"),
    process("order-1", [PYTHON, "-m", "bazaar.services.order"], "http://127.0.0.1:9101/healthz"),
    process("order-2", [PYTHON, "-m", "bazaar.services.order"], "http://127.0.0.1:9102/healthz"),
    process(
        "inventory", [PYTHON, "-m", "bazaar.services.inventory"], "http://127.0.0.1:9200/healthz"
    ),
    process(
        "cart", [PYTHON, "-m", "bazaar.services.cart"], "http://127.0.0.1:9300/healthz", "stopped"
    ),
    process("lb-order", ["haproxy", "-db"], "http://127.0.0.1:9100/healthz"),
]


def test_each_running_service_process_is_a_target_named_by_service_and_process() -> None:
    assert scrape_targets(PROCESSES) == [
        {"targets": ["127.0.0.1:9101"], "labels": {"job": "order", "process": "order-1"}},
        {"targets": ["127.0.0.1:9102"], "labels": {"job": "order", "process": "order-2"}},
        # inventory's health, and so its metrics, are on its ops port, not the gRPC one
        {"targets": ["127.0.0.1:9200"], "labels": {"job": "inventory", "process": "inventory"}},
    ]


def test_the_file_is_what_file_sd_reads_and_empties_when_all_stop(tmp_path: Path) -> None:
    home = Home(tmp_path)
    write_targets(home, PROCESSES)
    assert json.loads(targets_file(home).read_text()) == scrape_targets(PROCESSES)
    write_targets(home, [{**p, "state": "stopped"} for p in PROCESSES])
    assert json.loads(targets_file(home).read_text()) == []

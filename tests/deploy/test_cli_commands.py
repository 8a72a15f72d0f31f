"""The image's commands without an image: `bazaar migrate SERVICE`, `bazaar seed SERVICE`
and `bazaar serve SERVICE` run the service's own module in the process (what a container's
entrypoint does), with its settings from the environment."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bazaar.testing import free_port

BAZAAR = str(Path(sys.executable).parent / "bazaar")


def bazaar(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BAZAAR, *args],
        env={**os.environ, "BAZAAR_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


def test_migrate_and_seed_one_service(tmp_path: Path) -> None:
    migrated = bazaar(tmp_path, "migrate", "catalog")
    assert migrated.returncode == 0, migrated.stderr
    assert "alembic_version" in tables(tmp_path / "catalog.db")
    assert not (tmp_path / "order.db").exists()  # that service's alone

    seeded = bazaar(tmp_path, "seed", "catalog")
    assert seeded.returncode == 0, seeded.stderr
    assert "products added" in seeded.stdout


def test_an_unknown_service_or_a_bad_setting_is_a_usage_error(tmp_path: Path) -> None:
    assert bazaar(tmp_path, "serve", "warehouse").returncode == 2
    bad = bazaar(tmp_path, "serve", "payment", BAZAAR_PORT="not-a-port")
    assert bad.returncode == 2
    assert "BAZAAR_PORT" in bad.stderr


def test_serve_runs_the_service_until_terminated(tmp_path: Path) -> None:
    assert bazaar(tmp_path, "migrate", "payment").returncode == 0
    port = free_port()
    log = tmp_path / "payment.log"
    process = subprocess.Popen(
        [BAZAAR, "serve", "payment"],
        env={**os.environ, "BAZAAR_HOME": str(tmp_path), "BAZAAR_PORT": str(port)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "payment did not get ready"
            time.sleep(0.2)
    finally:
        process.terminate()  # what Kubernetes sends first
        # uvicorn stops gracefully, then re-raises the signal it caught.
        assert process.wait(timeout=20) in {0, -signal.SIGTERM}
    assert "service stopped" in log.read_text()

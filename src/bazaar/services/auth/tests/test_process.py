"""The real process: the command line, waitress on a port, and a clean stop on SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PASSWORD = "correct horse"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(home: Path, port: int = 0) -> dict[str, str]:
    return {
        **os.environ,
        "BAZAAR_HOME": str(home),
        "BAZAAR_PORT": str(port),
        "BAZAAR_ENVIRONMENT": "test",
        "BAZAAR_HTTP_THREADS": "2",
    }


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bazaar.services.auth", *args],
        env=environment(home),
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_until_healthy(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60  # a loaded machine (a whole suite beside it) is slow
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the auth service did not come up")


def test_the_command_line_prepares_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    migrated = cli(tmp_path, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    seed = tmp_path / "seed.json"
    admin = {"email": "root@example.com", "password": PASSWORD, "name": "Root"}
    seed.write_text(json.dumps({"admins": [admin]}))
    seeded = cli(tmp_path, "seed", str(seed))
    assert "1 admin(s) created" in seeded.stdout, seeded.stderr
    assert PASSWORD not in seeded.stdout + seeded.stderr
    rotated = cli(tmp_path, "rotate-keys")
    assert "new signing key" in rotated.stdout, rotated.stderr

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "bazaar.services.auth", "serve"],
        env=environment(tmp_path, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    token = "not issued"
    try:
        wait_until_healthy(url, process)
        credentials = {"email": admin["email"], "password": PASSWORD}
        login = httpx.post(f"{url}/api/auth/login", json=credentials, timeout=10)
        assert login.status_code == 200, login.text
        assert login.json()["user"]["roles"] == ["customer", "admin"]
        token = login.json()["access_token"]
        me = httpx.get(f"{url}/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["email"] == "root@example.com"
        # The key made at seeding and the rotated one are both published.
        assert len(httpx.get(f"{url}/.well-known/jwks.json").json()["keys"]) == 2
        assert httpx.get(f"{url}/nope").headers["content-type"] == "application/problem+json"
    finally:
        process.send_signal(signal.SIGTERM)
        _, logs = process.communicate(timeout=15)
    assert process.returncode == 0, logs
    assert "service stopped" in logs
    for secret in (PASSWORD, token, "$argon2id$"):
        assert secret not in logs

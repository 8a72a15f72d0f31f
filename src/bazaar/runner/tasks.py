"""One-shot commands run before the services start (migrations, seeds): in parallel, each
appending to its service's log, failing with the log's tail."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

from bazaar.runner.home import Home


class TaskFailed(Exception):
    pass


def run_parallel(
    commands: Mapping[str, Sequence[str]],
    env: Mapping[str, str],
    home: Home,
    what: str,
    timeout: float = 120.0,
    extra_env: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Run one command per process name at once (with `extra_env[name]` added to `env`);
    return when all succeeded, or raise `TaskFailed` with the failed ones' log tails.
    Nothing is left running either way."""
    running: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in commands.items():
            with home.log(name).open("ab") as log:
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                log.write(f"\n--- {stamp} {what}: {' '.join(command)}\n".encode())
                log.flush()
                running[name] = subprocess.Popen(
                    list(command),
                    env={**env, **(extra_env or {}).get(name, {})},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        deadline = time.monotonic() + timeout
        failures = []
        for name, popen in running.items():
            try:
                code = popen.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                failures.append((name, f"did not finish within {timeout:.0f} s"))
                continue
            if code != 0:
                failures.append((name, f"exited with code {code}"))
        if failures:
            raise TaskFailed(describe_failures(what, failures, home))
    finally:
        for popen in running.values():
            if popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()


def describe_failures(what: str, failures: list[tuple[str, str]], home: Home) -> str:
    lines = [f"{what} failed: " + ", ".join(f"{name} {why}" for name, why in failures)]
    for name, _ in failures:
        lines.append(f"--- last lines of {home.log(name)} ---")
        lines.append(home.log_tail(name, 30).rstrip())
    return "\n".join(lines)

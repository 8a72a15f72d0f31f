"""`bazaar new service`: a generated service passes the project's lint, type check, import
contracts and its own tests, in a copy of the checkout (the real tree is never touched)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _skipped(folder: str, names: list[str]) -> set[str]:
    """Caches, and the services' tests (only the generated service's run); the generator's
    template has a tests/ folder too, which it needs."""
    skip = {name for name in names if name == "__pycache__" or name.endswith(".pyc")}
    if "tests" in names and "templates" not in Path(folder).parts:
        skip.add("tests")
    return skip


def copy_of_checkout(target: Path) -> Path:
    shutil.copytree(ROOT / "src", target / "src", ignore=_skipped)
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # The copy's sources come before the installed (editable) package.
    env = {**os.environ, "PYTHONPATH": str(cwd / "src")}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_of_checkout(tmp_path_factory.mktemp("checkout"))
    made = run([str(BIN / "bazaar"), "new", "service", "wishlist", "--root", str(root)], root)
    assert made.returncode == 0, made.stderr
    assert "src/bazaar/services/wishlist/" in made.stdout
    return root


GENERATED = "src/bazaar/services/wishlist"


def test_the_generated_service_is_lint_clean(checkout: Path) -> None:
    for command in (["ruff", "check", GENERATED], ["ruff", "format", "--check", GENERATED]):
        result = run([str(BIN / command[0]), *command[1:]], checkout)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_generated_service_type_checks(checkout: Path) -> None:
    result = run([str(BIN / "mypy"), "-p", "bazaar.services.wishlist"], checkout)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_generated_service_keeps_to_itself(checkout: Path) -> None:
    result = run([str(BIN / "lint-imports"), "--no-cache"], checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    pyproject = (checkout / "pyproject.toml").read_text()
    assert '"bazaar.services.wishlist",' in pyproject


def test_the_generated_service_passes_its_tests(checkout: Path) -> None:
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", GENERATED], checkout
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_a_bad_or_taken_name_is_refused_and_writes_nothing(checkout: Path) -> None:
    for name, reason in (("Bad-Name", "no service name"), ("wishlist", "exists already")):
        before = sorted(p.name for p in (checkout / "src/bazaar/services").iterdir())
        result = run(
            [str(BIN / "bazaar"), "new", "service", name, "--root", str(checkout)], checkout
        )
        assert result.returncode == 2
        assert reason in result.stderr
        assert sorted(p.name for p in (checkout / "src/bazaar/services").iterdir()) == before

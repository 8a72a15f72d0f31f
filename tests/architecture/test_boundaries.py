"""The architecture, checked: services meet only through contracts."""

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_the_import_contracts_are_kept() -> None:
    # The contracts are in pyproject.toml under [tool.importlinter]: services never import
    # each other, the platform knows no service, no run-time module imports test support.
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken" in result.stdout


def test_generated_grpc_code_matches_the_proto(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Ibazaar/contracts/generated=contracts",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            "contracts/inventory.proto",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    fresh = tmp_path / "bazaar/contracts/generated"
    built = ROOT / "src/bazaar/contracts/generated"
    for name in ("inventory_pb2.py", "inventory_pb2_grpc.py"):
        assert filecmp.cmp(fresh / name, built / name, shallow=False), (
            f"{name} is stale: make proto"
        )


def test_every_service_has_the_same_shape() -> None:
    services = ROOT / "src/bazaar/services"
    for service in sorted(p for p in services.iterdir() if (p / "__init__.py").exists()):
        for part in ("__main__.py", "settings.py", "bootstrap.py", "tests"):
            assert (service / part).exists(), f"{service.name} has no {part}"
        # Entrypoints: app.py, or api.py where a service has several routers (gateway).
        assert (service / "app.py").exists() or (service / "api.py").exists(), service.name

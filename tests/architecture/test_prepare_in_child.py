"""`cli.prepare` migrates and seeds in a forked child: the work is done, a failure exits
the service as before, and the serving process never loads Alembic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bazaar.platform.cli import in_child_process

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")


def test_the_work_is_done(tmp_path: Path) -> None:
    marker = tmp_path / "done"

    def work() -> None:
        marker.write_text("yes")

    in_child_process(work)
    assert marker.read_text() == "yes"


def test_a_failure_exits_with_its_status(capfd: pytest.CaptureFixture[str]) -> None:
    def fail() -> None:
        raise RuntimeError("the database is unreachable")

    with pytest.raises(SystemExit) as exited:
        in_child_process(fail)
    assert exited.value.code == 1
    assert "RuntimeError: the database is unreachable" in capfd.readouterr().err


def test_a_system_exit_message_is_kept(capfd: pytest.CaptureFixture[str]) -> None:
    def refuse() -> None:
        raise SystemExit("inventory seed: products.json: not JSON")

    with pytest.raises(SystemExit) as exited:
        in_child_process(refuse)
    assert exited.value.code == 1
    assert "inventory seed: products.json: not JSON" in capfd.readouterr().err


def test_the_serving_process_never_loads_alembic(tmp_path: Path) -> None:
    program = f"""
import sys
from pathlib import Path
from bazaar.platform.cli import prepare
from bazaar.services.payment.bootstrap import MIGRATIONS
from bazaar.services.payment.settings import PaymentSettings
settings = PaymentSettings(home=Path({str(tmp_path)!r}), migrate_on_start=True)
prepare(settings, MIGRATIONS, None)
print("alembic" in sys.modules, Path(settings.database_url.split("///")[1]).exists())
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split()[-2:] == ["False", "True"]

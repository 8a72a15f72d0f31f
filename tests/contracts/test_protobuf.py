"""buf lints contracts/inventory.proto and checks it for breaking changes against the last
released version (contracts/released/inventory.image.json, written by `make
contracts-release`). Rules: contracts/buf.yaml."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from .tools import CONTRACTS, buf, run

BASELINE = "released/inventory.image.json"


def breaking(contracts: Path) -> tuple[int, str]:
    done = run(buf(), "breaking", ".", "--against", BASELINE, cwd=contracts)
    return done.returncode, done.stdout + done.stderr


def test_the_proto_passes_lint() -> None:
    done = run(buf(), "lint", ".", cwd=CONTRACTS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_proto_is_compatible_with_the_released_version() -> None:
    code, output = breaking(CONTRACTS)
    assert code == 0, output


# -- deliberate breaks in a copy --------------------------------------------------------


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copy(CONTRACTS / "buf.yaml", tmp_path)
    shutil.copy(CONTRACTS / "inventory.proto", tmp_path)
    (tmp_path / "released").mkdir()
    shutil.copy(CONTRACTS / BASELINE, tmp_path / BASELINE)
    return tmp_path


def edit(copy: Path, old: str, new: str) -> None:
    proto = copy / "inventory.proto"
    text = proto.read_text()
    assert re.search(old, text), old
    proto.write_text(re.sub(old, new, text, count=1))


def test_a_renumbered_field_fails(copy: Path) -> None:
    edit(copy, r"int32 on_hand = 2;", "int32 on_hand = 6;")
    code, output = breaking(copy)
    print(output)  # what `make contracts` shows
    assert code != 0
    assert 'field "2" with name "on_hand" on message "StockLevel" was deleted' in output


def test_a_retyped_field_fails(copy: Path) -> None:
    edit(copy, r"int32 qty = 2;", "int64 qty = 2;")
    code, output = breaking(copy)
    assert code != 0
    assert 'Field "2" with name "qty" on message "Line" changed type' in output, output


def test_a_removed_field_fails(copy: Path) -> None:
    edit(copy, r"\n  string request_id = 3;[^\n]*", "")
    code, output = breaking(copy)
    assert code != 0
    assert 'field "3" with name "request_id" on message "AdjustStockRequest"' in output, output


def test_an_added_field_is_compatible(copy: Path) -> None:
    edit(copy, r"int64 version = 5;", "int64 version = 5;\n  string warehouse = 6;")
    code, output = breaking(copy)
    assert code == 0, output

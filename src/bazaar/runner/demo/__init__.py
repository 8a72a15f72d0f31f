"""Demo data the runner loads on the first start: products.json (catalog and inventory)
and users.json (the admin account, for auth)."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path


def demo_file(name: str) -> Path:
    # The package is installed as plain files (editable or wheel), never zipped.
    return Path(str(files(__name__) / name))


def admin_login() -> tuple[str, str]:
    admin = json.loads(demo_file("users.json").read_text())["admins"][0]
    return admin["email"], admin["password"]

"""`bazaar new service NAME`: a new service in the platform's one shape.

It writes `src/bazaar/services/NAME/` from `templates/service/`: settings, a typed service
object with its use cases, an HTTP route, a consumed event, a table with its migration,
and tests; then adds the service to the import contract that keeps services apart. What
is left to a person (start it with `make up`, route it at the gateway) is printed.
"""

from __future__ import annotations

import keyword
import re
from datetime import UTC, datetime
from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates" / "service"
TEMPLATE_SUFFIX = ".tmpl"
NAME = re.compile(r"^[a-z][a-z0-9]{1,30}$")
# The import-linter contract in pyproject.toml whose `modules` list every service.
INDEPENDENCE_CONTRACT = 'name = "Services never import each other"'


class ScaffoldError(ValueError):
    """A name or a tree that a service cannot be generated into."""


def new_service(name: str, root: Path) -> list[Path]:
    """Write service `name` into the checkout at `root`; returns the files written."""
    target = root / "src" / "bazaar" / "services" / name
    _check(name, target)
    tokens = {
        "__Class__": name.capitalize(),
        "__Title__": name.capitalize(),
        "__name__": name,
        "__date__": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
    written = []
    for template in sorted(TEMPLATES.rglob(f"*{TEMPLATE_SUFFIX}")):
        relative = _fill(str(template.relative_to(TEMPLATES)), tokens)
        path = target / relative.removesuffix(TEMPLATE_SUFFIX)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(template.read_text(encoding="utf-8"), tokens), encoding="utf-8")
        written.append(path)
    _add_to_import_contract(root / "pyproject.toml", name)
    return written


def next_steps(name: str) -> str:
    return "\n".join(
        [
            f"bazaar.services.{name} is written: src/bazaar/services/{name}/",
            f"  test it:   .venv/bin/python -m pytest src/bazaar/services/{name}",
            "  run it:    add one ServiceSpec line to src/bazaar/runner/topology.py "
            f'(ServiceSpec("{name}", "http", neighbour_env="BAZAAR_{name.upper()}_URL"))',
            "  expose it: add its public routes to the gateway's route table",
            "  then read docs/adding-a-service.md for the rest of the tour",
        ]
    )


def _check(name: str, target: Path) -> None:
    if not NAME.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(
            f"{name!r} is no service name: 2-31 lower-case letters and digits, "
            "starting with a letter (it becomes a Python package and a URL path)"
        )
    if not (target.parent / "__init__.py").exists():
        raise ScaffoldError(f"{target.parent} is not the services package of a Bazaar checkout")
    if target.exists():
        raise ScaffoldError(f"{target} exists already")


def _fill(text: str, tokens: dict[str, str]) -> str:
    for token, value in tokens.items():
        text = text.replace(token, value)
    return text


def _add_to_import_contract(pyproject: Path, name: str) -> None:
    """List the new package in the independence contract, after the last service."""
    text = pyproject.read_text(encoding="utf-8")
    start = text.find(INDEPENDENCE_CONTRACT)
    if start < 0:
        raise ScaffoldError(f"{pyproject}: no import contract {INDEPENDENCE_CONTRACT!r}")
    end = text.index("]", start)
    entry = f'    "bazaar.services.{name}",\n'
    pyproject.write_text(text[:end] + entry + text[end:], encoding="utf-8")

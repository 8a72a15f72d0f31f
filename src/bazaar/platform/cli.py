"""The command line every service process shares:

python -m bazaar.services.<name>            serve (the default)
python -m bazaar.services.<name> migrate    bring the database to the latest revision
python -m bazaar.services.<name> revision "what changed"   write the next migration
python -m bazaar.services.<name> seed FILE  load demo data (idempotent)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bazaar.platform.config import ConfigurationError, ServiceSettings
from bazaar.platform.migrations import migrate, new_revision
from bazaar.platform.serving import run_asgi, start_process
from bazaar.platform.telemetry import start_tracing

Settings = TypeVar("Settings", bound=ServiceSettings)
Seeder = Callable[[Settings, Path], Coroutine[Any, Any, str]]


def serve_asgi(build_app: Callable[[Settings], Any]) -> Callable[[Settings], None]:
    """`serve` for an HTTP service: build its app from the settings and serve it."""

    def serve(settings: Settings) -> None:
        run_asgi(build_app(settings), settings)

    return serve


def run_service_cli(
    settings_class: type[Settings],
    serve: Callable[[Settings], None],
    *,
    migrations_dir: Path | None = None,
    seed: Seeder[Settings] | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    """The `main()` of every service: `bootstrap.py` names its settings, how it serves,
    its migrations and its seeder."""
    parser = argparse.ArgumentParser(
        prog=f"python -m bazaar.services.{settings_class.service_name}"
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the service (default)")
    if migrations_dir:
        commands.add_parser("migrate", help="upgrade the database to the latest revision")
        revising = commands.add_parser(
            "revision", help="write the next migration from what the tables declare"
        )
        revising.add_argument("message", help="what the revision changes, in a few words")
    if seed:
        seeding = commands.add_parser("seed", help="load demo data from a JSON file")
        seeding.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        settings = settings_class.load()
    except ConfigurationError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    start_process(settings)
    if args.command == "revision" and migrations_dir:
        print(f"{settings.service_name}: wrote {new_revision(migrations_dir, args.message)}")
    elif args.command == "migrate" and migrations_dir:
        migrate(migrations_dir, settings.database_url)
        print(f"{settings.service_name}: database at the latest revision")
    elif args.command == "seed" and seed:
        print(asyncio.run(seed(settings, args.file)))
    else:
        prepare(settings, migrations_dir, seed)
        # After prepare's fork (the exporter's thread would not survive it), before the
        # app is built (its factories instrument it only once tracing is on).
        start_tracing(settings.service_name)
        serve(settings)


def prepare(settings: Settings, migrations_dir: Path | None, seed: Seeder[Settings] | None) -> None:
    """What the embedded runner asks a service to do before it serves: one process instead
    of three per service makes `bazaar up` start in half the time."""
    migrating = bool(migrations_dir and settings.migrate_on_start)
    seeding = bool(seed and settings.seed_file)
    if not (migrating or seeding):
        return

    def work() -> None:
        if migrations_dir and migrating:
            migrate(migrations_dir, settings.database_url)
        if seed and settings.seed_file:
            print(asyncio.run(seed(settings, settings.seed_file)), flush=True)

    in_child_process(work)


def in_child_process(work: Callable[[], None]) -> None:
    """Run `work` in a forked child and wait for it, so that what it loads (Alembic and
    its templates, the seed data: ~10 MB) never stays in the serving process's memory.
    A failure exits this process as it would have: the same output, the same status.
    Without fork (Windows) the work runs here."""
    if not hasattr(os, "fork"):
        work()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os._exit(_exit_status_of(work))
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code != 0:
        raise SystemExit(code)


def _exit_status_of(work: Callable[[], None]) -> int:
    code = 0
    try:
        work()
    except SystemExit as exc:
        if isinstance(exc.code, int):
            code = exc.code
        elif exc.code is not None:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code

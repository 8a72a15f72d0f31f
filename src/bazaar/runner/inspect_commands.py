"""The commands that look into a platform's data rather than run it:

bazaar check [--home H] [--json] [--pending-deadline S]     prove the checkout's invariants
bazaar deadletters [list] [--home H | --broker-url URL]      what consumers gave up on
bazaar deadletters replay (SEQ | --all)                      publish them again

Exit codes: 0 all well, 1 violations found (check) or a replay failed, 2 nothing to look
at (no databases, no running broker).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from bazaar.runner.check import PENDING_DEADLINE_SECONDS, NothingToCheck, inspect_platform
from bazaar.runner.deadletters import DeadLetter, DeadLetterNotFound, DeadLetters
from bazaar.runner.home import Home
from bazaar.runner.state import read_state, running_runner

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_commands(commands: Any) -> None:
    """Add `check` and `deadletters` to the `bazaar` parser's subcommands."""
    # --home after the command too (`bazaar check --home H`); SUPPRESS keeps the one given
    # before the command when this one is absent.
    home = argparse.ArgumentParser(add_help=False)
    home.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="data folder")
    broker = argparse.ArgumentParser(add_help=False, parents=[home])
    broker.add_argument(
        "--broker-url",
        default=argparse.SUPPRESS,
        help="nats:// or amqp:// URL (default: the broker of the platform running on the home)",
    )

    check_ = commands.add_parser(
        "check", parents=[home], help="prove the checkout's invariants on the services' data"
    )
    check_.add_argument("--json", action="store_true", help="print JSON")
    check_.add_argument(
        "--pending-deadline",
        type=float,
        default=PENDING_DEADLINE_SECONDS,
        metavar="SECONDS",
        help="an order pending longer than this is stuck (default: %(default)s)",
    )
    check_.set_defaults(run=check)

    letters = commands.add_parser(
        "deadletters", parents=[broker], help="list or replay the events consumers gave up on"
    )
    letters.set_defaults(run=list_dead_letters, json=False)
    actions = letters.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", parents=[broker], help="list them (the default)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=list_dead_letters)
    replay_ = actions.add_parser("replay", parents=[broker], help="publish them again")
    which = replay_.add_mutually_exclusive_group(required=True)
    which.add_argument("seq", nargs="?", type=int, help="the dead letter's sequence number")
    which.add_argument("--all", action="store_true", help="every dead letter")
    replay_.set_defaults(run=replay_dead_letters)


# --- check ------------------------------------------------------------------------------


def cluster_databases(home: Home, postgres_url: str | None = None) -> dict[str, str] | None:
    """The databases of a cluster home (from its runner.json), each service's URL; the
    password of a server given by BAZAAR_POSTGRES_URL comes from that variable again (or
    from `postgres_url`, the same server's URL)."""
    state = read_state(home.state_file)
    databases = (state or {}).get("databases")
    if not isinstance(databases, dict):
        return None
    given = postgres_url or os.environ.get("BAZAAR_POSTGRES_URL")
    password = make_url(given).password if given else None
    urls = {}
    for service, url in databases.items():
        parsed = make_url(str(url))
        if password is not None and parsed.password == "***":
            parsed = parsed.set(password=password)
        urls[str(service)] = parsed.render_as_string(hide_password=False)
    return urls


def check(args: argparse.Namespace, home: Home) -> int:
    try:
        report = inspect_platform(
            home.root, pending_deadline_seconds=args.pending_deadline, urls=cluster_databases(home)
        )
    except NothingToCheck as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(
            json.dumps(
                {
                    "violations": [vars(v) for v in report.violations],
                    "orders": dict(report.orders),
                    "products": report.products,
                    "mails": report.mails,
                    "read": report.read,
                    "skipped": report.skipped,
                    "summary": report.summary,
                },
                indent=2,
            )
        )
    else:
        _print_report(report.violations, report.summary, report.skipped)
    return EXIT_FAILED if report.violations else EXIT_OK


def _print_report(violations: list[Any], summary: str, skipped: dict[str, str]) -> None:
    console = Console()
    for service, why in skipped.items():
        console.print(f"[yellow]skipped {service}: {why}[/]")
    if not violations:
        console.print(f"[green]no violations[/] ({summary})")
        return
    table = Table(title=f"{len(violations)} violations", title_justify="left")
    for column in ("kind", "subject", "detail"):
        table.add_column(column, overflow="fold")
    for violation in violations:
        table.add_row(violation.kind, violation.subject, violation.detail)
    console.print(table)
    console.print(summary)


# --- dead letters -----------------------------------------------------------------------


def broker_url(args: argparse.Namespace, home: Home) -> str | None:
    """--broker-url, or the NATS server of the platform running on the home."""
    given = getattr(args, "broker_url", None)
    if given:
        return str(given)
    # A RabbitMQ's password is not in runner.json: the variable the platform got it from.
    configured = os.environ.get("BAZAAR_BROKER_URL", "")
    if configured.startswith(("amqp://", "amqps://")):
        return configured
    state = read_state(home.state_file)
    if not state or not running_runner(home.state_file):
        return None
    if state.get("broker_url"):
        return str(state["broker_url"])
    for process in state.get("processes") or []:
        if process.get("name") == "nats" and process.get("url"):
            return str(process["url"])
    return None


def list_dead_letters(args: argparse.Namespace, home: Home) -> int:
    url = broker_url(args, home)
    if url is None:
        return _no_broker(home)
    try:
        letters = asyncio.run(_list(url))
    except Exception as exc:  # unreachable, refused, not JetStream: say so, no traceback
        print(
            f"cannot read the dead letters at {url}: {type(exc).__name__}: {exc}", file=sys.stderr
        )
        return EXIT_USAGE
    if args.json:
        print(json.dumps([letter.as_json() for letter in letters], indent=2))
        return EXIT_OK
    if not letters:
        print("no dead letters")
        return EXIT_OK
    # One block per letter, not a table: the error needs the whole width.
    print(f"{len(letters)} dead letters (bazaar deadletters replay SEQ | --all)")
    for letter in letters:
        when = letter.time.strftime("%Y-%m-%d %H:%M:%S") if letter.time else "-"
        envelope = letter.envelope_id or "(unparseable)"
        print(f"#{letter.seq}  {when}  {letter.consumer}  {letter.event_type}  {envelope}")
        print(f"    {letter.error}")
    return EXIT_OK


def replay_dead_letters(args: argparse.Namespace, home: Home) -> int:
    url = broker_url(args, home)
    if url is None:
        return _no_broker(home)
    try:
        replayed = asyncio.run(_replay(url, None if args.all else args.seq))
    except DeadLetterNotFound as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        print(f"replay failed at {url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for letter in replayed:
        print(
            f"replayed #{letter.seq}: {letter.event_type} {letter.envelope_id} ({letter.consumer})"
        )
    print(f"{len(replayed)} dead letters replayed")
    return EXIT_OK


async def _list(url: str) -> list[DeadLetter]:
    async with DeadLetters.connect(url) as letters:
        return await letters.list_all()


async def _replay(url: str, seq: int | None) -> list[DeadLetter]:
    async with DeadLetters.connect(url) as letters:
        return await letters.replay_all() if seq is None else [await letters.replay(seq)]


def _no_broker(home: Home) -> int:
    print(
        f"bazaar is not running on {home.root}: start it (bazaar up) or pass --broker-url",
        file=sys.stderr,
    )
    return EXIT_USAGE

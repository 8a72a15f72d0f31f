"""`python -m bench [--smoke] [--profile] [--results DIR]`: see the package docstring."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from bench import report
from bench.run import DEFAULT_PROFILED, FULL_SECTIONS, SECTIONS, SMOKE_SECTIONS, Run
from bench.sizes import FULL, SMOKE
from bench.target import TargetError, open_target

RESULTS = Path(__file__).resolve().parent / "results"


def _flag(name: str) -> str:
    value = os.environ.get(name, "").strip()
    return "" if value.lower() in ("", "0", "false", "no") else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Bazaar benchmarks")
    parser.add_argument("--smoke", action="store_true", help="seconds, tiny counts (BENCH_SMOKE=1)")
    parser.add_argument(
        "--profile",
        nargs="?",
        const=",".join(DEFAULT_PROFILED),
        default=_flag("BENCH_PROFILE"),
        help="py-spy the named processes (or all) during the saturation run (BENCH_PROFILE=1)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where results go")
    parser.add_argument(
        "--only",
        type=lambda text: tuple(name.strip() for name in text.split(",") if name.strip()),
        default=(),
        help=(
            f"run just these sections, comma-separated (of {', '.join(SECTIONS)}; "
            "the smoke run's default leaves out cluster)"
        ),
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        default="",
        help=(
            "compare with another commit side by side (its own worktree and environment; "
            "alone, runs just that comparison: add --only for more)"
        ),
    )
    parser.add_argument(
        "--orders", type=int, default=0, help="orders in the saturation run (default 2,000)"
    )
    args = parser.parse_args(argv)
    unknown = set(args.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    smoke = bool(args.smoke or _flag("BENCH_SMOKE"))
    sizes = SMOKE if smoke else FULL
    sections = args.only or (SMOKE_SECTIONS if smoke else FULL_SECTIONS)
    if args.baseline:
        sections = (*args.only, "baseline") if args.only else ("baseline",)
    if args.orders > 0:
        sizes = replace(sizes, saturation_orders=args.orders)
    profiled = _profiled(args.profile)
    console = Console(stderr=True)
    say = console.print
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        with open_target(say) as target:
            folder = args.results / f"run-{stamp}"
            run = Run(target, sizes, folder, say, profiled, sections, args.baseline)
            results = asyncio.run(run.all())
    except TargetError as exc:
        say(f"[red]{exc}[/red]")
        return 2
    written = report.write(results, args.results, stamp)
    out = Console()
    report.print_table(results, out if out.is_terminal else Console(width=150))
    say(f"results: {written['json']}, {written['png']}")
    if run.failed:
        say(f"[red]sections that failed: {', '.join(run.failed)}[/red]")
        return 1
    return 0


def _profiled(option: str) -> tuple[str, ...]:
    if not option:
        return ()
    if option.lower() in ("1", "true", "yes"):
        return DEFAULT_PROFILED
    return tuple(name.strip() for name in option.split(",") if name.strip())


if __name__ == "__main__":
    sys.exit(main())

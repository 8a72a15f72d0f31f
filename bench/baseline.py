"""`python -m bench --baseline REV`: the current code against another commit, side by side
in one run, so that a change is judged against what it replaces on the same machine at
the same moment.

The commit is checked out as a git worktree with an environment of its own (`make
install` there), kept under `$BAZAAR_BENCH_BASELINES` (default `~/.cache/bazaar-bench`)
so that the next comparison with it starts at once; `git worktree remove PATH` drops one.
Its platform is started by its own interpreter (`bench/platform_child.py`), with the same
environment as the bench's own. Then, alternating between the two (A, B, A, B...):
rounds of checkout at saturation (paid/s, p50, CPU of all processes per paid order),
checkout at one fixed rate on both (half the current code's saturation throughput: p50
and p99), catalog reads through the gateway, and the RSS of all processes at idle and
after. Ratios are current/baseline.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bazaar.runner.ports import free_ports
from bench import procfs, reads, sides
from bench.child import ROOT
from bench.sizes import Sizes
from bench.stats import ratio
from bench.target import AS_SHIPPED, GENEROUS_LIMITS, Target, TargetError

Say = Callable[[str], None]
CHILD = Path(__file__).resolve().parent / "platform_child.py"
INSTALLED = Path(".venv") / ".installed"  # the Makefile's stamp


def cache() -> Path:
    configured = os.environ.get("BAZAAR_BENCH_BASELINES", "")
    return Path(configured) if configured else Path.home() / ".cache" / "bazaar-bench"


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise TargetError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def prepare(revision: str, say: Say) -> tuple[str, Path]:
    """The commit's full id and its worktree, installed (`make install`) if it was not."""
    commit = _git("rev-parse", "--verify", f"{revision}^{{commit}}")
    folder = cache() / commit
    if not (folder / ".git").exists():
        _git("worktree", "prune")
        folder.parent.mkdir(parents=True, exist_ok=True)
        say(f"  checking out {commit[:10]} into {folder}")
        _git("worktree", "add", "--detach", str(folder), commit)
    if not (folder / INSTALLED).exists():
        say(f"  installing {commit[:10]}'s environment (make install: minutes the first time)")
    # Up to date, it does nothing; interrupted last time, it finishes.
    done = subprocess.run(["make", "-C", str(folder), "install"], capture_output=True, text=True)
    if done.returncode != 0:
        raise TargetError(f"make install of {commit[:10]} failed:\n{done.stderr[-2000:]}")
    return commit, folder


@contextmanager
def started(folder: Path, env: dict[str, str], say: Say) -> Iterator[Target]:
    """The worktree's platform, run by its own interpreter, until the block ends."""
    python = folder / ".venv" / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="bazaar-bench-baseline-") as home:
        log = Path(home) / "child.log"
        say(f"  starting the baseline's platform in {home}")
        with log.open("w") as errors:
            child = subprocess.Popen(
                [str(python), str(CHILD), f"{home}/home", str(free_ports(1)[0]), json.dumps(env)],
                cwd=folder,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
            assert child.stdout is not None and child.stdin is not None
            try:
                line = child.stdout.readline()  # once ready; empty if it exited
                if not line:
                    raise TargetError(
                        f"the baseline's platform did not start (exit {child.wait()}):\n"
                        + log.read_text()[-2000:]
                    )
                ready = json.loads(line)
                yield Target(ready["public_url"], ready["urls"], ready["pids"])
            finally:
                child.stdin.close()
                child.wait(timeout=120)


async def measure(current: Target, revision: str, sizes: Sizes, say: Say) -> dict[str, Any]:
    commit, folder = prepare(revision, say)
    rounds = sides.Rounds(sizes.topology_rounds, sizes.topology_orders, sizes.topology_shoppers)
    with started(folder, {**GENEROUS_LIMITS, **AS_SHIPPED}, say) as base:
        targets = [("current", current), ("baseline", base)]
        memory: dict[str, Any] = {"idle": {n: procfs.memory(t.pids) for n, t in targets}}
        async with sides.opened(targets, sizes, rounds) as both:
            await sides.alternate(both, sizes, rounds, say)
            memory["after_saturation"] = {n: procfs.memory(t.pids) for n, t in targets}
            rate = round(max(1.0, statistics.median(both[0].paid_per_s) / 2), 1)
            for side in both:
                say(f"  {side.name}: {rate:g} orders/s for {sizes.fixed_rate_seconds:g} s")
                side.fixed_rate = await sides.fixed_rate(
                    side, sizes, rate, sizes.fixed_rate_seconds
                )
        say("  catalog reads through each gateway")
        read = await reads.measure({n: t.public_url + reads.PRODUCTS for n, t in targets}, sizes)
    result = sides.compare(both, rounds, "current", "baseline")
    result.update(revision=revision, commit=commit, reads=read, memory=memory)
    rps = {name: side["rps"] for name, side in read["sides"].items()}
    result["reads_current_over_baseline"] = round(ratio(rps["current"], rps["baseline"]), 3)
    totals = {moment: {n: m["total"] for n, m in taken.items()} for moment, taken in memory.items()}
    result["rss_current_over_baseline"] = {
        moment: round(ratio(total["current"], total["baseline"]), 3)
        for moment, total in totals.items()
    }
    return result

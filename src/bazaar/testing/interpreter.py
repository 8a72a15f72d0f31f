"""Code run in a fresh interpreter: what a process loads at start-up cannot be seen from
inside a test process, which has loaded everything already."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def fresh_interpreter(code: str, timeout: float = 60.0) -> str:
    """Run `code` (dedented) in a new Python process; its stdout, stripped. A non-zero exit
    fails the test with its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()

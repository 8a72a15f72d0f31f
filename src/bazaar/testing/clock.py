"""A clock a test moves by hand, for code that takes its clock as an argument: what
happens "after five minutes" is checked without waiting, and a loaded machine cannot
make a test late."""

from __future__ import annotations


class FakeClock:
    """Callable like `time.monotonic`; stands still until `advance`d."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

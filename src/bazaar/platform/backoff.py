"""Exponential backoff, capped: the one rule for how long to wait before trying again (an
event redelivered, the outbox relay after a failure, a request with no responder yet, a
process restarted, a saga step retried)."""

from __future__ import annotations

# 2**64 times any sensible initial delay is past every cap; a larger exponent would only
# risk a float overflow.
_MAX_DOUBLINGS = 64


def backoff(attempt: int, *, initial: float, maximum: float, jitter: float = 1.0) -> float:
    """Seconds to wait after `attempt` tries already made: `initial` doubled per attempt,
    at most `maximum`. `jitter` in [0, 1] (random per caller) spreads the waits of many
    callers over the upper half of that: 1.0 waits it all, 0.0 half of it."""
    delay = min(initial * 2.0 ** min(max(attempt, 0), _MAX_DOUBLINGS), maximum)
    return delay * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0))

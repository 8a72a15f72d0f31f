"""The one backoff rule: doubling from `initial`, capped, optionally spread by jitter."""

from bazaar.platform.backoff import backoff


def test_it_doubles_per_attempt_up_to_the_cap() -> None:
    delays = [backoff(attempt, initial=0.05, maximum=0.2) for attempt in range(5)]
    assert delays == [0.05, 0.1, 0.2, 0.2, 0.2]


def test_any_number_of_attempts_stays_at_the_cap() -> None:
    assert backoff(10**9, initial=0.001, maximum=30.0) == 30.0


def test_jitter_spreads_the_wait_over_its_upper_half() -> None:
    assert backoff(2, initial=1.0, maximum=60.0, jitter=0.0) == 2.0
    assert backoff(2, initial=1.0, maximum=60.0, jitter=0.5) == 3.0
    assert backoff(2, initial=1.0, maximum=60.0, jitter=7.0) == 4.0  # clamped to [0, 1]

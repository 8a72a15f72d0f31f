"""How long the bus retries an event whose handler fails before dead-lettering it."""

from bazaar.platform.bus import DEFAULT_MAX_DELIVERIES, RETRY_MAX_DELAY, retry_delay


def test_retries_back_off_exponentially_up_to_a_cap() -> None:
    delays = [retry_delay(attempt) for attempt in range(1, 12)]
    assert delays[:4] == [0.4, 0.8, 1.6, 3.2]
    assert delays == sorted(delays)
    assert max(delays) == RETRY_MAX_DELAY == retry_delay(10_000)


def test_the_default_budget_outlasts_a_short_outage() -> None:
    # An outage of a consumer's neighbour (the mail relay restarting, say) lasting a
    # minute must not move good events to the dead letters.
    budget = sum(retry_delay(attempt) for attempt in range(1, DEFAULT_MAX_DELIVERIES))
    assert 120 <= budget <= 300

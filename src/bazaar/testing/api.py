"""For tests that drive the platform through its public API: `ok`, a response's JSON once
its status is checked, and `poll`, which waits for what the platform does in the
background (an order's saga, a mail)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest

T = TypeVar("T")


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The response's JSON; fails the test, with the request and the body, on another status."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
    )
    return response.json()


def poll(
    fetch: Callable[[], T],
    until: Callable[[T], bool],
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> T:
    """Call `fetch` until `until(result)`; fail with the last result after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if until(result):
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {timeout} s; last: {result!r}")
        time.sleep(interval)

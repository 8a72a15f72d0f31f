"""The mail sender: the background task that runs `send_due` (one pass over the mails
due, see `NotificationService.send_due`) at once when woken (after a commit that queued a
mail), and every `poll_seconds` for mails that came due since (a retry's time, a dead
sender's hold). Replicas each run one; claims keep them off each other's mails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from bazaar.platform.bus import retry_delay
from bazaar.platform.logs import get_logger

log = get_logger(__name__)


class MailSender:
    def __init__(
        self,
        send_due: Callable[[], Awaitable[int]],
        *,
        at_once: int,
        first: Callable[[], Awaitable[None]],
        poll_seconds: float = 1.0,
        drain_seconds: float = 10.0,
    ) -> None:
        """`send_due` returns how many mails it took; `at_once` of them means more may be
        due. `first` runs before the first pass."""
        self._send_due = send_due
        self._at_once = at_once
        self._first = first
        self._poll_seconds = poll_seconds
        self._drain_seconds = drain_seconds
        self._wakeup = asyncio.Event()
        # Set while the sender waits with nothing it could send now (see `settled`).
        self._parked = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._parked.clear()
        self._wakeup.set()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="mail-sender")

    async def stop(self) -> None:
        """Let the pass under way finish, so the mails it sent are marked sent, then stop;
        a pass still running after `drain_seconds` is cancelled."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wakeup.set()
        done, _ = await asyncio.wait({task}, timeout=self._drain_seconds)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def settled(self) -> None:
        """Return once every commit that queued a mail has been followed by a pass, and the
        sender waits with nothing it could send now (what tests wait for)."""
        await self._parked.wait()

    async def _run(self) -> None:
        failures = 0
        started = False
        while not self._stopping:
            self._parked.clear()
            self._wakeup.clear()
            try:
                if not started:
                    await self._first()
                    started = True
                claimed = await self._send_due()
                failures = 0
            except Exception as exc:  # the database is busy or away: wait, try again
                failures += 1
                log.warning(
                    "mail sender failed", error=f"{type(exc).__name__}: {exc}", attempt=failures
                )
                await asyncio.sleep(retry_delay(failures))
                continue
            if claimed >= self._at_once:
                continue  # more may be due
            if not self._wakeup.is_set():
                self._parked.set()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives with the wake-up, and stop() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_seconds):
                    await self._wakeup.wait()

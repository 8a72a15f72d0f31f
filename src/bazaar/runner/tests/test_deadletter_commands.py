"""`bazaar deadletters` against a real nats-server: the broker is found through the
running platform's runner.json (or --broker-url), letters are listed, then replayed."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from bazaar.platform.bus import Bus, PermanentError
from bazaar.platform.events import Envelope, new_event
from bazaar.runner import cli
from bazaar.runner.state import write_state
from bazaar.testing import NatsServer, jetstream


@pytest.fixture
def home(tmp_path: Path, nats: NatsServer) -> Path:
    """A home whose runner.json says a platform runs (this test's process) with `nats`."""
    root = tmp_path / "home"
    root.mkdir()
    write_state(
        root / "runner.json",
        {"pid": os.getpid(), "processes": [{"name": "nats", "url": nats.url}]},
    )
    return root


def dead_letter(url: str, count: int) -> list[str]:
    """Publish `count` events that a consumer refuses, until all are dead letters."""

    async def refuse(event: Envelope) -> None:
        raise PermanentError("unknown product")

    async def run() -> list[str]:
        bus = Bus(url, "cart")
        bus.on_event("order.created", "cart", refuse)
        await bus.start()
        events = [new_event("order.created", "order", {"n": n}) for n in range(count)]
        try:
            for event in events:
                await bus.publish_event(event)
            js = jetstream(bus)
            deadline = asyncio.get_running_loop().time() + 10
            while (await js.stream_info("BAZAAR_DEADLETTER")).state.messages < count:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
        finally:
            await bus.stop()
        return [event.id for event in events]

    return asyncio.run(run())


def listed(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    assert cli.main(["deadletters", "list", "--json", *args]) == 0
    answer: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return answer


def test_list_then_replay_one_then_all(
    home: Path, nats: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = dead_letter(nats.url, 2)
    capsys.readouterr()  # the bus's log lines
    letters = listed(capsys, "--home", str(home))
    assert [letter["envelope_id"] for letter in letters] == [first, second]
    assert letters[0]["consumer"] == "cart" and letters[0]["event_type"] == "order.created"
    assert "unknown product" in str(letters[0]["error"])

    assert cli.main(["--home", str(home), "deadletters"]) == 0  # the table, by default
    table = capsys.readouterr().out
    assert "2 dead letters" in table and "order.created" in table

    assert cli.main(["--home", str(home), "deadletters", "replay", str(letters[0]["seq"])]) == 0
    assert f"replayed #{letters[0]['seq']}" in capsys.readouterr().out
    assert [letter["envelope_id"] for letter in listed(capsys, "--broker-url", nats.url)] == [
        second
    ]

    assert cli.main(["deadletters", "replay", "--all", "--broker-url", nats.url]) == 0
    assert "1 dead letters replayed" in capsys.readouterr().out
    assert listed(capsys, "--broker-url", nats.url) == []


def test_replaying_an_unknown_letter_fails(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["deadletters", "replay", "99", "--home", str(home)]) == 1
    assert "no dead letter #99" in capsys.readouterr().err


def test_without_a_running_platform_it_asks_for_a_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--home", str(tmp_path), "deadletters"]) == 2
    assert "--broker-url" in capsys.readouterr().err
    assert cli.main(["deadletters", "--broker-url", "nats://127.0.0.1:1"]) == 2
    assert "cannot read the dead letters" in capsys.readouterr().err


def test_replay_needs_a_sequence_or_all(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["deadletters", "replay"])
    with pytest.raises(SystemExit):
        cli.main(["deadletters", "replay", "3", "--all"])

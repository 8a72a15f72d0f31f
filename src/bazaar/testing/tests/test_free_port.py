"""Test servers' ports: free, never the same twice, and out of the kernel's ephemeral range
(from which a reconnecting client's source port could take a restarting server's port)."""

from __future__ import annotations

import socket

import pytest

from bazaar.testing import servers


def test_ports_are_free_distinct_and_below_the_ephemeral_range() -> None:
    ports = [servers.free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    below = servers._ephemeral_start()
    assert all(servers.LOWEST_TEST_PORT <= port < below for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))  # still free


def test_a_port_in_use_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken, socket.socket() as released:
        taken.bind(("127.0.0.1", 0))
        released.bind(("127.0.0.1", 0))
        busy, free = taken.getsockname()[1], released.getsockname()[1]
        released.close()
        picks = iter([busy, free])
        monkeypatch.setattr(servers, "_ephemeral_start", lambda: 65_536)
        monkeypatch.setattr(servers._ports, "randrange", lambda low, high: next(picks))
        assert servers.free_port() == free


def test_with_no_room_below_the_ephemeral_range_the_kernel_picks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(servers, "_ephemeral_start", lambda: 1024)
    port = servers.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))

import socket

import pytest

from bazaar.runner.ports import PortInUse, ensure_free, free_ports, port_in_use


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)

    assert len(set(ports)) == 20
    for port in ports:
        assert not port_in_use(port)


def test_free_ports_never_hand_out_an_excluded_port() -> None:
    first = free_ports(1)[0]

    # The kernel may hand the same port again once released; it must be skipped.
    assert all(first not in free_ports(5, exclude=[first]) for _ in range(20))


def test_a_listening_port_is_in_use() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        assert port_in_use(port)
        with pytest.raises(PortInUse) as caught:
            ensure_free(port)

    message = str(caught.value)
    assert message.startswith(f"port {port} is in use; set BAZAAR_PORT=")
    suggested = int(message.rsplit("=", 1)[1])
    assert suggested != port and not port_in_use(suggested)


def test_a_closed_port_is_free() -> None:
    port = free_ports(1)[0]

    ensure_free(port)  # does not raise

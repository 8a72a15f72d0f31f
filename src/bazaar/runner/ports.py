"""Ports: the public one must be free; every internal one is picked free by the kernel."""

from __future__ import annotations

import socket
from collections.abc import Iterable

LOOPBACK = "127.0.0.1"


class PortInUse(Exception):
    def __init__(self, port: int, suggestion: int | None) -> None:
        hint = f"set BAZAAR_PORT={suggestion}" if suggestion else "set BAZAAR_PORT to a free port"
        super().__init__(f"port {port} is in use; {hint}")
        self.port = port


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when binding `host:port` fails. SO_REUSEADDR, as servers set it, so a port
    whose last connections linger in TIME_WAIT counts as free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def ensure_free(port: int, host: str = LOOPBACK) -> None:
    if port_in_use(port, host):
        raise PortInUse(port, suggest_free(port + 1, host))


def suggest_free(start: int, host: str = LOOPBACK, tries: int = 50) -> int | None:
    for port in range(start, min(start + tries, 65536)):
        if not port_in_use(port, host):
            return port
    return None


def free_ports(count: int, host: str = LOOPBACK, exclude: Iterable[int] = ()) -> list[int]:
    """`count` distinct free ports. All sockets stay bound until every port is picked, so
    the kernel never hands out the same one twice; `exclude` (the public port) is skipped."""
    excluded = set(exclude)
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(sock)
            sock.bind((host, 0))
            port = sock.getsockname()[1]
            if port not in excluded:
                ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports

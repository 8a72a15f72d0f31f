"""Readiness probes: cheap, blocking, never raising. Plain sockets and http.client, so no
proxy settings from the environment ever route a loopback probe elsewhere."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

Probe = Callable[[], bool]


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when GET `url` answers 200."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout
    )
    try:
        connection.request("GET", parts.path or "/")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def probe_for(target: str) -> Probe:
    """A probe from a target string: `http://host:port/path` or `tcp://host:port`."""
    parts = urlsplit(target)
    if parts.scheme == "tcp":
        host, port = parts.hostname or "127.0.0.1", parts.port or 0
        return lambda: tcp_open(host, port)
    return lambda: http_ok(target)


def always_ready() -> bool:
    return True

"""The framework floor: a bare ASGI hello-world served exactly as the services are served
(`bazaar.platform.serving.asgi_server`: same uvicorn, same settings). Whatever a service
costs above this is the service's own work.

    python -m bench.floor PORT
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from bazaar.platform.serving import asgi_server
from bazaar.runner.ports import LOOPBACK, free_ports
from bench import child

BODY = b'{"hello":"world"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


@contextmanager
def floor_server(timeout: float = 30.0) -> Iterator[tuple[str, int]]:
    """Run the floor in its own process; yields (url, pid)."""
    port = free_ports(1)[0]
    process = subprocess.Popen(child.command("bench.floor", str(port)), env=child.environment())
    url = f"http://{LOOPBACK}:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the floor server did not start (exit {process.poll()})")
            time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    asyncio.run(asgi_server(app, LOOPBACK, int(sys.argv[1])).serve())


if __name__ == "__main__":
    main()

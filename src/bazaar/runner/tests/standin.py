"""A stand-in service for the runner's tests: the command line every service has
(`migrate`, `seed FILE`, serve), stdlib only so it starts in a blink.

Serving answers 200 on every path of BAZAAR_PORT (and BAZAAR_OPS_PORT), with the BAZAAR_*
environment it was given as JSON, so a test can check the runner's wiring. `migrate` and
`seed` append a line to $BAZAAR_HOME/standin.log; STANDIN_FAIL=<command> makes that
command fail.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bazaar.runner.topology import ServiceSpec


def standins(*, grpc: bool = True) -> tuple[ServiceSpec, ...]:
    """A small topology in the real one's shape: an HTTP service that seeds, a gRPC one
    with an ops port, a worker, and the public gateway."""
    module = "bazaar.runner.tests.standin"
    return (
        ServiceSpec(
            "auth", "http", neighbour_env="BAZAAR_AUTH_URL", seed_file="users.json", module=module
        ),
        ServiceSpec(
            "inventory",
            "grpc" if grpc else "http",
            neighbour_env="BAZAAR_INVENTORY_ADDR",
            seed_file="products.json",
            module=module,
        ),
        ServiceSpec("notification", "worker", module=module),
        ServiceSpec("gateway", "http", database=False, public=True, module=module),
    )


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        wiring = {k: v for k, v in os.environ.items() if k.startswith(("BAZAAR_", "OTEL_"))}
        body = json.dumps(wiring).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def record(line: str) -> None:
    home = Path(os.environ["BAZAAR_HOME"])
    with (home / "standin.log").open("a") as log:
        log.write(line + "\n")


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    if os.environ.get("STANDIN_FAIL") == command:
        print(f"stand-in: {command} fails on purpose", file=sys.stderr)
        return 3
    if command in ("migrate", "seed"):
        record(" ".join(argv))
        return 0
    # Serving does what a real service does first in the embedded mode (platform cli).
    for step, asked in (
        ("migrate", os.environ.get("BAZAAR_MIGRATE_ON_START") == "true"),
        ("seed", bool(os.environ.get("BAZAAR_SEED_FILE"))),
    ):
        if not asked:
            continue
        if os.environ.get("STANDIN_FAIL") == step:
            print(f"stand-in: {step} fails on purpose", file=sys.stderr)
            return 3
        record(step if step == "migrate" else f"seed {os.environ['BAZAAR_SEED_FILE']}")
    ports = [int(os.environ["BAZAAR_PORT"])]
    if os.environ.get("BAZAAR_OPS_PORT"):
        ports.append(int(os.environ["BAZAAR_OPS_PORT"]))
    servers = [ThreadingHTTPServer(("127.0.0.1", port), Handler) for port in ports]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

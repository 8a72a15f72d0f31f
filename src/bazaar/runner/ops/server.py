"""The ops server `bazaar up` runs beside the services (process `ops`): it receives their
traces over OTLP/HTTP into the local trace store, and answers the questions the gateway's
ops page asks, as JSON:

POST /v1/traces            an OTLP/HTTP protobuf export (what every process sends here
                           when no other OTEL_EXPORTER_OTLP_ENDPOINT is given)
GET  /api/overview         processes and their health, outbox lag, dead letters, rates
GET  /api/orders           the orders seen last, with their trace's size
GET  /api/orders/ORDER_ID  the order's traces as waterfalls, its saga steps, its row
GET  /healthz

    python -m bazaar.runner.ops --home H --port P [--max-spans N]

Loopback only, no authentication: the gateway's admin page is the way in for people.
The standard library's threaded server: exports are small and few (each process sends a
batch every half second at most), and nothing else need be installed.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from bazaar.runner.home import Home
from bazaar.runner.ops import overview
from bazaar.runner.ops.otlp import MAX_EXPORT_BYTES, PROTOBUF, BadExport, decode, success
from bazaar.runner.ops.store import DEFAULT_MAX_SPANS, TraceStore
from bazaar.runner.ops.waterfall import saga_steps, waterfalls

ORDER_PATH = re.compile(r"^/api/orders/([^/]{1,100})$")


class Ops:
    """What the handlers work with: the home (runner.json, databases) and the store."""

    def __init__(self, home: Home, store: TraceStore) -> None:
        self.home = home
        self.store = store

    def overview(self) -> dict[str, Any]:
        recent = self.store.since(overview.window_start_ns())
        return {
            "processes": overview.processes(self.home),
            "outbox": overview.outbox_lag(self.home),
            "dead_letters": overview.dead_letters(self.home),
            "rates": overview.rates(recent),
            "checkouts_per_minute": overview.checkouts_per_minute(recent),
            "rate_window_seconds": overview.RATE_WINDOW_SECONDS,
            "store": {"spans": self.store.count(), "max_spans": self.store.max_spans},
        }

    def orders(self, limit: int) -> dict[str, Any]:
        return {"orders": [vars(seen) for seen in self.store.recent_orders(limit)]}

    def order(self, order_id: str) -> dict[str, Any] | None:
        spans = self.store.spans_of_order(order_id)
        state = overview.order_state(self.home, order_id)
        if not spans and state is None:
            return None
        traces = waterfalls(spans)
        return {
            "order_id": order_id,
            "order": state,
            "services": list(dict.fromkeys(s for w in traces for s in w.services)),
            "spans": len(spans),
            "saga_steps": saga_steps(spans),
            "traces": [w.as_json() for w in traces],
        }


def handler_for(ops: Ops) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "bazaar-ops"
        protocol_version = "HTTP/1.1"  # keep-alive: each exporter reuses its connection

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/v1/traces":
                return self._json(404, {"detail": f"no such resource: POST {self.path}"})
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_EXPORT_BYTES:
                # Unread, the body would be taken for the next request on this kept-alive
                # connection: close it after the answer.
                self.close_connection = True
                detail = f"the export has {length} bytes; at most {MAX_EXPORT_BYTES} are read"
                return self._json(413, {"detail": detail})
            body = self.rfile.read(length)
            if not (self.headers.get("Content-Type") or "").startswith(PROTOBUF):
                return self._json(415, {"detail": f"send OTLP as {PROTOBUF}"})
            try:
                ops.store.add(decode(body, self.headers.get("Content-Encoding") or ""))
            except BadExport as exc:
                return self._json(400, {"detail": str(exc)})
            self._send(200, success(), PROTOBUF)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/healthz":
                return self._json(200, {"status": "ok"})
            if url.path == "/api/overview":
                return self._json(200, ops.overview())
            if url.path == "/api/orders":
                limit = _limit(parse_qs(url.query).get("limit", ["20"])[0])
                return self._json(200, ops.orders(limit))
            found = ORDER_PATH.match(url.path)
            if found:
                order = ops.order(unquote(found.group(1)))
                if order is None:
                    return self._json(404, {"detail": "no trace and no row of this order"})
                return self._json(200, order)
            self._json(404, {"detail": f"no such resource: GET {url.path}"})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body, default=str).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # one line per export would drown the log

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # An exporter that closed its kept-alive connection (its process stopped, or it
        # timed out under load) is no error worth a traceback in the log.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _limit(raw: str) -> int:
    return min(int(raw), 200) if raw.isdigit() and int(raw) > 0 else 20


def serve(home: Home, host: str, port: int, max_spans: int) -> None:
    store = TraceStore(home.root / "traces.db", max_spans)
    server = _Server((host, port), handler_for(Ops(home, store)))
    signal.signal(signal.SIGTERM, _stop)
    print(f"ops: traces in {store.path} (at most {max_spans} spans), on {host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None, run: Callable[..., None] = serve) -> int:
    parser = argparse.ArgumentParser(prog="python -m bazaar.runner.ops")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-spans", type=int, default=DEFAULT_MAX_SPANS)
    args = parser.parse_args(argv)
    if args.max_spans < 1:
        parser.error("--max-spans must be at least 1")
    run(Home(args.home.resolve()), args.host, args.port, args.max_spans)
    return 0


if __name__ == "__main__":
    sys.exit(main())

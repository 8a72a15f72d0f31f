"""The local ops view: the OTLP receiver and its bounded store, the waterfall both views
draw, the ops API the gateway reads, `bazaar trace`, and how the runner points every
process's traces at it (or not)."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from bazaar.runner.cli import main
from bazaar.runner.home import Home
from bazaar.runner.ops import launch
from bazaar.runner.ops.otlp import BadExport, decode
from bazaar.runner.ops.server import Ops, handler_for
from bazaar.runner.ops.store import TraceStore
from bazaar.runner.ops.waterfall import saga_steps, waterfalls

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
OTHER = bytes.fromhex("1af7651916cd43dd8448eb211c80319d")


def span_id(number: int) -> bytes:
    return number.to_bytes(8, "big")


def attribute(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def export(*spans: tuple[str, Span]) -> bytes:
    request = ExportTraceServiceRequest()
    for service, span in spans:
        resource_spans = ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])
        resource_spans.resource.attributes.append(attribute("service.name", service))
        request.resource_spans.append(resource_spans)
    return bytes(request.SerializeToString())


def span(
    number: int,
    parent: int,
    name: str,
    start_ms: int,
    end_ms: int,
    trace: bytes = TRACE,
    **attrs: str,
) -> Span:
    made = Span(
        trace_id=trace,
        span_id=span_id(number),
        parent_span_id=span_id(parent) if parent else b"",
        name=name,
        kind=Span.SPAN_KIND_SERVER if not parent else Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=1_000_000_000_000 + start_ms * 1_000_000,
        end_time_unix_nano=1_000_000_000_000 + end_ms * 1_000_000,
    )
    made.attributes.extend(attribute(k.replace("__", "."), v) for k, v in attrs.items())
    return made


CHECKOUT = [
    ("gateway", span(1, 0, "POST /api/checkout", 0, 100)),
    ("order", span(2, 1, "POST /api/checkout", 10, 90, bazaar__order_id="o-1")),
    ("order", span(4, 2, "saga", 40, 300, bazaar__order_id="o-1")),
    (
        "order",
        span(
            5, 4, "saga reserve", 41, 60, bazaar__saga__step="reserve", bazaar__saga__outcome="done"
        ),
    ),
    ("cart", span(3, 2, "GET /internal/carts/{user_id}", 20, 30)),
]


def test_an_export_is_read_gzipped_or_not_and_garbage_is_refused() -> None:
    body = export(*CHECKOUT)
    assert [s.service for s in decode(body)] == ["gateway", "order", "order", "order", "cart"]
    assert len(decode(gzip.compress(body), "gzip")) == 5
    with pytest.raises(BadExport):
        decode(b"\xff\x00 not protobuf at all")
    with pytest.raises(BadExport):
        decode(body, "br")


def test_the_store_keeps_at_most_its_cap_dropping_the_oldest(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "traces.db", max_spans=3)
    store.add(decode(export(*CHECKOUT)))
    assert store.count() == 3
    kept = {s.name for s in store.trace(TRACE.hex())}
    assert "POST /api/checkout" not in {
        s.name for s in store.trace(TRACE.hex()) if s.service == "gateway"
    }
    assert kept == {"saga", "saga reserve", "GET /internal/carts/{user_id}"}


def test_an_orders_spans_include_the_traces_linked_to_it(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "traces.db")
    resumed = span(9, 0, "saga resume", 5000, 5100, trace=OTHER, bazaar__order_id="o-1")
    resumed.links.add(trace_id=TRACE, span_id=span_id(2))
    unrelated = span(7, 0, "GET /api/products", 0, 5, trace=bytes(16 * [7]))
    store.add(decode(export(*CHECKOUT, ("order", resumed), ("gateway", unrelated))))
    assert store.traces_of_order("o-1") == [TRACE.hex(), OTHER.hex()]
    assert [o.order_id for o in store.recent_orders()] == ["o-1"]
    assert store.recent_orders()[0].services == 3


def test_a_waterfall_puts_each_span_under_its_parent_in_start_order() -> None:
    (drawn,) = waterfalls(decode(export(*CHECKOUT)))
    assert [(r.depth, r.span.service, r.span.name) for r in drawn.rows] == [
        (0, "gateway", "POST /api/checkout"),
        (1, "order", "POST /api/checkout"),
        (2, "cart", "GET /internal/carts/{user_id}"),
        (2, "order", "saga"),
        (3, "order", "saga reserve"),
    ]
    assert drawn.duration_ms == 300
    row = drawn.as_json()["rows"][1]
    assert row["left_pct"] == pytest.approx(10 / 3, abs=0.001)
    assert row["width_pct"] == pytest.approx(80 / 3, abs=0.001)
    assert [s["step"] for s in saga_steps(s.span for s in drawn.rows)] == ["reserve"]


@pytest.fixture
def ops_api(tmp_path: Path) -> Iterator[str]:
    home = Home(tmp_path / "home")
    home.create()
    store = TraceStore(home.root / "traces.db")
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(Ops(home, store)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    store.close()


def test_the_ops_api_receives_exports_and_answers_for_an_order(ops_api: str) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    with httpx.Client(base_url=ops_api, trust_env=False) as client:
        assert (
            client.post("/v1/traces", content=export(*CHECKOUT), headers=headers).status_code == 200
        )
        refused = client.post(
            "/v1/traces", content=b"{}", headers={"Content-Type": "application/json"}
        )
        assert refused.status_code == 415
        assert client.post("/v1/traces", content=b"\xff\xff", headers=headers).status_code == 400
        order = client.get("/api/orders/o-1").json()
        assert order["services"] == ["gateway", "order", "cart"] and order["spans"] == 5
        assert order["saga_steps"][0]["outcome"] == "done"
        assert client.get("/api/orders/nope").status_code == 404
        assert client.get("/api/orders").json()["orders"][0]["order_id"] == "o-1"
        overview = client.get("/api/overview").json()
        assert overview["store"]["spans"] == 5
        assert overview["dead_letters"] == {"error": "no broker known (is the platform running?)"}


def test_an_export_over_the_cap_is_refused_unread(
    ops_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bazaar.runner.ops.server.MAX_EXPORT_BYTES", 1024)
    headers = {"Content-Type": "application/x-protobuf"}
    with httpx.Client(base_url=ops_api, trust_env=False) as client:
        refused = client.post("/v1/traces", content=b"x" * 2048, headers=headers)
        assert refused.status_code == 413
        assert client.get("/api/overview").json()["store"]["spans"] == 0


def test_bazaar_trace_draws_an_order_from_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    TraceStore(home / "traces.db").add(decode(export(*CHECKOUT)))
    assert main(["--home", str(home), "trace", "o-1"]) == 0
    drawn = capsys.readouterr().out
    assert "3 services" in drawn and "saga reserve" in drawn and "█" in drawn
    assert main(["--home", str(home), "trace", "o-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["traces"][0]["spans"] == 5
    assert main(["--home", str(home), "trace", "unknown"]) == 1
    assert main(["--home", str(tmp_path / "empty"), "trace", "o-1"]) == 2


@pytest.mark.parametrize(
    ("given", "local"),
    [
        ({}, True),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, True),  # for other signals: traces stay local
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, False),
        ({"OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_traces_go_to_the_local_store_unless_told_otherwise(
    given: dict[str, str], local: bool
) -> None:
    added = launch.tracing_env(given, 4000)
    assert added["BAZAAR_OPS_API_URL"] == "http://127.0.0.1:4000"
    assert ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" in added) is local
    if local:
        assert added["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "http/protobuf"


def test_each_process_names_itself_whatever_name_was_given() -> None:
    assert "OTEL_SERVICE_NAME" not in launch.without_service_name({"OTEL_SERVICE_NAME": "x"})

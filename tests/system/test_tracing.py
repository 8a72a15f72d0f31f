"""One checkout is one trace, on real processes: the platform runs with
`OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/HTTP receiver this test runs (as a
collector would be), and the trace of one checkout holds spans of the gateway, order, cart,
catalog, inventory, payment and notification, tied together across HTTP, gRPC and the bus.
Each process names itself after its service, and the log lines of the saga carry the
trace's id."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bazaar.runner.platform import Platform, StartupError
from bazaar.runner.ports import free_ports
from bazaar.testing.otlp import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.system

SEVEN = {"gateway", "order", "cart", "catalog", "inventory", "payment", "notification"}
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def traced_platform(
    tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver
) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("traced") / "home"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        # Given to the runner, and still each process must name itself after its service.
        "OTEL_SERVICE_NAME": "one-name-for-all",
    }
    platform = Platform(home, free_ports(1)[0], extra_env=env)
    try:
        platform.start(timeout=120)
    except StartupError as exc:
        pytest.fail(f"the platform did not start (home {home}):\n{exc}", pytrace=False)
    yield platform
    platform.stop()


def ok(response: httpx.Response, status: int = 200) -> dict[str, object]:
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    body: dict[str, object] = response.json()
    return body


def buy_one(platform: Platform) -> str:
    """Sign up, fill the cart, check out; the order id once it is paid."""
    with httpx.Client(base_url=platform.public_url, timeout=10, trust_env=False) as api:
        email = f"traced-{uuid.uuid4().hex[:10]}@example.com"
        signup = {"email": email, "password": "a long passphrase 42", "name": "Tracy"}
        token = ok(api.post("/api/auth/signup", json=signup), 201)["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        product = ok(api.get("/api/products", params={"page_size": 1}))["items"][0]  # type: ignore[index]
        item = {"product_id": product["id"], "qty": 1}
        ok(api.post("/api/cart/items", headers=auth, json=item))
        key = {"Idempotency-Key": uuid.uuid4().hex}
        order_id = str(ok(api.post("/api/checkout", headers={**auth, **key}), 201)["order_id"])
        for _ in range(150):
            if ok(api.get(f"/api/orders/{order_id}", headers=auth))["status"] == "paid":
                return order_id
            time.sleep(0.2)
    pytest.fail(f"order {order_id} was not paid in 30 s")


def checkout_trace(spans: list[ReceivedSpan], order_id: str) -> list[ReceivedSpan]:
    """The spans of the trace that the order's saga ran in."""
    traces = {s.trace_id for s in spans if s.attributes.get("bazaar.order_id") == order_id}
    return [s for s in spans if s.trace_id in traces]


def test_one_checkout_is_one_trace_across_the_seven_services(
    traced_platform: Platform, receiver: OtlpReceiver
) -> None:
    order_id = buy_one(traced_platform)

    def complete(spans: list[ReceivedSpan]) -> bool:
        # Whole: every service, the mail, and every span's parent (a client span ends, and
        # is exported, after the server span it called).
        trace = checkout_trace(spans, order_id)
        ids = {s.span_id for s in trace}
        return (
            {s.service for s in trace} >= SEVEN
            and any(s.name.startswith("smtp") for s in trace)
            and all(not s.parent_id or s.parent_id in ids for s in trace)
        )

    trace = checkout_trace(receiver.wait_for(complete, timeout=45), order_id)
    assert len({s.trace_id for s in trace}) == 1, "the checkout's spans are in several traces"
    by_id = {s.span_id: s for s in trace}
    print(f"\none checkout: {len(trace)} spans in one trace, services {sorted(SEVEN)}")

    # It begins at the gateway's server span for the public checkout, which has no parent.
    roots = [s for s in trace if not s.parent_id]
    assert [(r.service, r.name) for r in roots] == [("gateway", "POST /api/checkout")]
    # HTTP: the gateway's call is the parent of order's server span.
    order_server = next(s for s in trace if s.service == "order" and s.kind == SERVER)
    assert by_id[order_server.parent_id].service == "gateway"
    # gRPC: inventory's Reserve is a child of order's client call.
    reserve = next(s for s in trace if s.service == "inventory" and s.name.endswith("/Reserve"))
    assert reserve.kind == SERVER and by_id[reserve.parent_id].service == "order"
    # The bus: each consumer's span continues the context its event was written in.
    consumers = {s.service for s in trace if s.kind == CONSUMER}
    assert {"cart", "catalog", "notification"} <= consumers
    assert any(s.kind == PRODUCER and s.service == "order" for s in trace)
    # Every saga step is a span, the SMTP send one too.
    steps = [s.attributes["bazaar.saga.step"] for s in trace if "bazaar.saga.step" in s.attributes]
    assert steps == ["reserve", "charge", "confirm"]
    assert any(s.service == "notification" and s.name.startswith("smtp") for s in trace)


def test_every_process_is_named_after_its_service(receiver: OtlpReceiver) -> None:
    names = {s.service for s in receiver.snapshot()}
    assert names >= SEVEN and "one-name-for-all" not in names


def test_the_saga_log_lines_carry_the_trace_id(
    traced_platform: Platform, receiver: OtlpReceiver
) -> None:
    order_id = buy_one(traced_platform)
    trace = checkout_trace(
        receiver.wait_for(lambda spans: bool(checkout_trace(spans, order_id)), timeout=30),
        order_id,
    )
    trace_id = trace[0].trace_id
    log = Path(traced_platform.home.log("order")).read_text().splitlines()
    saga_lines = [
        json.loads(line)
        for line in log
        if line.startswith("{") and order_id in line and '"saga steps"' in line
    ]
    assert saga_lines, "no saga log line of the order"
    assert all(line["trace_id"] == trace_id and len(line["span_id"]) == 16 for line in saga_lines)

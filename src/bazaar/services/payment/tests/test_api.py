import asyncio

import httpx

from bazaar.services.payment.tests.fakes import HeldProcessor

KEY = {"Idempotency-Key": "order-1"}


async def charge(
    client: httpx.AsyncClient, order_id: str = "order-1", amount: int = 1500, key: str = "order-1"
) -> httpx.Response:
    return await client.post(
        "/internal/payments",
        json={"order_id": order_id, "amount_cents": amount},
        headers={"Idempotency-Key": key},
    )


async def test_a_charge_is_captured_once_per_key(client: httpx.AsyncClient) -> None:
    first = await charge(client)
    second = await charge(client)
    assert first.status_code == second.status_code == 201
    assert first.json()["status"] == "captured"
    assert first.json()["payment_id"] == second.json()["payment_id"]


async def test_concurrent_replays_make_one_payment(client: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(*(charge(client) for _ in range(10)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["payment_id"] for a in answers}) == 1


async def test_a_reused_key_with_another_amount_is_a_conflict(client: httpx.AsyncClient) -> None:
    await charge(client)
    answer = await charge(client, amount=99)
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"


async def test_decline_mode_declines_and_outage_mode_is_503(client: httpx.AsyncClient) -> None:
    assert (await client.put("/internal/mode", json={"mode": "decline"})).json() == {
        "mode": "decline"
    }
    declined = await charge(client, "order-2", key="order-2")
    assert declined.json()["status"] == "declined"
    await client.put("/internal/mode", json={"mode": "outage"})
    down = await charge(client, "order-3", key="order-3")
    assert down.status_code == 503
    assert down.headers["retry-after"] == "1"
    assert (await client.get("/internal/payments/order-3")).status_code == 404


async def test_refund_is_idempotent(client: httpx.AsyncClient) -> None:
    await charge(client)
    first = await client.post("/internal/payments/order-1/refund")
    second = await client.post("/internal/payments/order-1/refund")
    assert first.json()["status"] == second.json()["status"] == "refunded"
    assert first.json()["refunded_at"] == second.json()["refunded_at"]
    assert (await client.post("/internal/payments/nope/refund")).status_code == 404


async def test_bad_input_is_a_problem_and_changes_nothing(client: httpx.AsyncClient) -> None:
    cases = [
        {"order_id": "o", "amount_cents": -1},
        {"order_id": "", "amount_cents": 1},
        {"order_id": "o", "amount_cents": "ten"},
        {"order_id": "o", "amount_cents": 1, "admin": True},
    ]
    for body in cases:
        answer = await client.post("/internal/payments", json=body, headers=KEY)
        assert answer.status_code == 422, body
        assert answer.json()["status"] == 422
        assert answer.json()["detail"]
    no_key = await client.post("/internal/payments", json={"order_id": "o", "amount_cents": 1})
    assert no_key.status_code == 422
    garbage = await client.post("/internal/payments", content=b"{nope", headers=KEY)
    assert garbage.status_code == 422
    assert (await client.get("/internal/payments/o")).status_code == 404
    assert (await client.put("/internal/mode", json={"mode": "explode"})).status_code == 422


async def test_operations_endpoints(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
    metrics = await client.get("/metrics")
    assert "bazaar_http_requests_total" in metrics.text
    missing = await client.delete("/internal/payments/x")
    assert missing.status_code == 405
    assert missing.headers["content-type"] == "application/problem+json"


async def cancel(client: httpx.AsyncClient, order_id: str = "order-1") -> httpx.Response:
    return await client.post(f"/internal/payments/{order_id}/cancel", json={"amount_cents": 1500})


async def test_cancelling_a_capture_refunds_it_once(client: httpx.AsyncClient) -> None:
    await charge(client)
    first, second = await cancel(client), await cancel(client)
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == second.json()["status"] == "refunded"
    assert first.json()["refunded_at"] == second.json()["refunded_at"]


async def test_cancelling_before_any_charge_voids_it_and_a_late_charge_takes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await client.put("/internal/mode", json={"mode": "outage"})  # voiding needs no processor
    voided = await cancel(client)
    assert voided.status_code == 200
    assert (voided.json()["status"], voided.json()["amount_cents"]) == ("voided", 1500)
    await client.put("/internal/mode", json={"mode": "ok"})

    late = await charge(client)

    assert late.status_code == 201 and late.json()["status"] == "voided"
    assert (await client.get("/internal/payments/order-1")).json()["status"] == "voided"
    assert (await cancel(client)).json() == voided.json()


async def test_a_charge_at_the_processor_when_the_order_gives_up_takes_nothing(
    slow_client: httpx.AsyncClient, held_processor: HeldProcessor
) -> None:
    await slow_client.put("/internal/mode", json={"mode": "slow"})
    in_flight = asyncio.create_task(charge(slow_client))
    await asyncio.wait_for(held_processor.arrived.wait(), 5)  # the charge is at the processor

    voided = await cancel(slow_client)
    held_processor.released.set()  # the processor answers only now
    late = await in_flight

    assert voided.json()["status"] == late.json()["status"] == "voided"
    assert (await slow_client.get("/internal/payments/order-1")).json()["status"] == "voided"


async def test_cancelling_a_capture_during_an_outage_is_503(client: httpx.AsyncClient) -> None:
    await charge(client)
    await client.put("/internal/mode", json={"mode": "outage"})
    answer = await cancel(client)
    assert answer.status_code == 503
    assert (await client.get("/internal/payments/order-1")).json()["status"] == "captured"


async def test_a_cancel_without_its_amount_is_422(client: httpx.AsyncClient) -> None:
    for body in ({}, {"amount_cents": -5}, {"amount_cents": 1, "extra": 1}):
        answer = await client.post("/internal/payments/o/cancel", json=body)
        assert answer.status_code == 422, body
    assert (await client.get("/internal/payments/o")).status_code == 404

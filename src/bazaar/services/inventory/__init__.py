"""The inventory service: stock on hand and reservations, served over gRPC.

`contracts/inventory.proto` is its API; every change of a product's stock is announced as a
`stock.changed` event through the outbox. Start with `app.py` (the servicer), `handlers.py`
(one handler per use case), `domain.py` (the rules) and `bootstrap.py` (the wiring).
"""

"""Order: owns orders and runs the checkout saga.

Checkout prices the user's cart (catalog, over the bus) and writes the order `pending`
with its `order.created` event in one transaction. A background saga runner then takes
every pending order through reserve (inventory, gRPC) -> charge (payment, HTTP) ->
confirm, compensating on the way out (refund, release) when a step is refused. Every step
is persisted in the order row, so a crash at any point only delays the saga.
"""

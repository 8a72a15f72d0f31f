"""Cart: one cart per user, its lines priced live by the catalog.

Names and prices are never stored here: each answer asks the catalog for a quote over the
bus, so the cart always shows today's price. At checkout the order service reads the lines
(`GET /internal/carts/{user_id}`) and reports the order with `order.created`, which removes
the ordered quantities from the cart, once.
"""

"""Payment: a simulated card processor with idempotent charges and refunds.

Its failure modes (decline, slowness, outage) are switchable, at start-up by
`BAZAAR_PAYMENT_MODE` and at run time by `PUT /internal/mode`, so that the checkout
saga's handling of each can be shown and tested.
"""

"""Catalog: products, categories and prices, plus a read model of stock.

It answers the storefront over HTTP, prices carts and orders by request/reply over the bus
(`bazaar.rpc.catalog.quote`), and keeps each product's available stock from inventory's
`stock.changed` events (the highest version wins).
"""

"""Gateway: the one public entry point. Stateless: it owns no data.

It serves the public API by forwarding each public path, unchanged, to the service that
owns it (`api.py`), the admin stock endpoints by calling inventory over gRPC
(`admin.py`), and a server-rendered storefront (`storefront.py`, `templates/`).
"""

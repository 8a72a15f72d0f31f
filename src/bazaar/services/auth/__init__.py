"""Auth: users, password hashes and the keys that sign access tokens.

A Flask service on waitress (the one WSGI service of Bazaar). It issues short-lived
EdDSA access tokens at signup and login and publishes its public keys at
`/.well-known/jwks.json`, against which every other service verifies tokens itself.
"""

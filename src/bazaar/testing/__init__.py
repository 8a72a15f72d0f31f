"""Test support, kept out of the run-time packages (an import contract says no run-time
module imports it): servers a test needs, databases, a token minter, a fake clock."""

from bazaar.testing.clock import FakeClock
from bazaar.testing.databases import (
    DATABASE_BACKENDS,
    POSTGRES_URL_VARIABLE,
    fresh_database,
    migrated_database,
    provisioned_database,
)
from bazaar.testing.servers import (
    REDIS_URL_VARIABLE,
    NatsServer,
    free_port,
    jetstream,
    nats_server_binary,
    redis_server,
    require_external,
    require_program,
)
from bazaar.testing.tokens import TokenMinter

__all__ = [
    "DATABASE_BACKENDS",
    "POSTGRES_URL_VARIABLE",
    "REDIS_URL_VARIABLE",
    "FakeClock",
    "NatsServer",
    "TokenMinter",
    "free_port",
    "fresh_database",
    "jetstream",
    "migrated_database",
    "nats_server_binary",
    "provisioned_database",
    "redis_server",
    "require_external",
    "require_program",
]

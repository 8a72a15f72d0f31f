from bazaar.platform.migrations import run_alembic_env
from bazaar.services.cart.store import metadata

# Cart consumes order.created: its database has the inbox (and the outbox) too.
run_alembic_env(metadata)

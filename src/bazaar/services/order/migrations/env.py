from bazaar.platform.migrations import run_alembic_env
from bazaar.services.order.store import metadata

# Order publishes its events through the outbox: the outbox and inbox tables come too.
run_alembic_env(metadata)

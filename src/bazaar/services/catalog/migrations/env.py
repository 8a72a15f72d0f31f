from bazaar.platform.migrations import run_alembic_env
from bazaar.services.catalog.store import metadata

# Catalog consumes stock events: its database has the inbox (and the outbox beside it).
run_alembic_env(metadata)

from bazaar.platform.migrations import run_alembic_env
from bazaar.services.auth.store import metadata

# Auth neither publishes nor consumes events: no outbox, no inbox.
run_alembic_env(metadata, messaging=False)

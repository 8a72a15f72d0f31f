from bazaar.platform.migrations import run_alembic_env
from bazaar.services.payment.store import metadata

# Payment neither publishes nor consumes events: no outbox, no inbox.
run_alembic_env(metadata, messaging=False)

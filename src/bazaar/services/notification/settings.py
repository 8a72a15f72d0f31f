from __future__ import annotations

from email.utils import parseaddr
from typing import ClassVar

from pydantic import Field, field_validator

from bazaar.platform.config import ServiceSettings


class NotificationSettings(ServiceSettings):
    service_name: ClassVar[str] = "notification"

    smtp_host: str = Field(default="127.0.0.1", min_length=1, description="SMTP relay host.")
    smtp_port: int = Field(default=8025, ge=1, le=65535, description="SMTP relay port.")
    smtp_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="Connect and per-command SMTP timeout."
    )
    mail_from: str = Field(
        default="Bazaar <orders@bazaar.local>", description="The From: of every mail."
    )

    @field_validator("mail_from")
    @classmethod
    def _one_address(cls, value: str) -> str:
        # A header value: an address, and no line break that would start a new header.
        _, address = parseaddr(value)
        if "@" not in address or any(c in value for c in "\r\n"):
            raise ValueError("must be an address such as 'Bazaar <orders@bazaar.local>'")
        return value

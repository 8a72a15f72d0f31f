"""Rate limits on signup and login, per client address and per account: password guessing
and account-creation floods meet a 429 long before they cost many password hashes."""

from __future__ import annotations

from dataclasses import dataclass

from flask import request
from limits import RateLimitItem

from bazaar.platform.ratelimit import RateLimiter, TrustedProxies, client_address, parse_rate
from bazaar.services.auth import domain
from bazaar.services.auth.settings import AuthSettings


@dataclass(frozen=True)
class Throttle:
    limiter: RateLimiter
    trusted: TrustedProxies
    per_address: dict[str, RateLimitItem]
    per_account: dict[str, RateLimitItem]

    @classmethod
    def from_settings(cls, settings: AuthSettings, limiter: RateLimiter | None = None) -> Throttle:
        return cls(
            limiter or RateLimiter(settings.rate_limit_url),
            TrustedProxies.parse(settings.trusted_proxies),
            per_address={
                "signup": parse_rate(settings.signup_rate_per_address),
                "login": parse_rate(settings.login_rate_per_address),
            },
            per_account={
                "signup": parse_rate(settings.signup_rate_per_account),
                "login": parse_rate(settings.login_rate_per_account),
            },
        )

    def client(self) -> str:
        """The caller's address; `X-Forwarded-For` counts only from a trusted proxy."""
        return client_address(
            request.remote_addr or "", request.headers.getlist("X-Forwarded-For"), self.trusted
        )

    def count_address(self, action: str) -> None:
        """Before the body is even read: every attempt from an address counts."""
        self.limiter.hit(self.per_address[action], action, "address", self.client())

    def count_account(self, action: str, email: str) -> None:
        self.limiter.hit(self.per_account[action], action, "account", domain.normalize_email(email))

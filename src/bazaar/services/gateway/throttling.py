"""A ceiling on checkouts per user: a script that hammers `POST /api/checkout` with one
account gets 429s from the gateway instead of filling the order service's saga queue.
The storefront's checkout form counts against the same budget."""

from __future__ import annotations

from limits import RateLimitItem

from bazaar.platform.problems import Problem
from bazaar.platform.ratelimit import AsyncRateLimiter, parse_rate
from bazaar.platform.tokens import TokenVerifier


class CheckoutThrottle:
    def __init__(self, rate: str, limiter: AsyncRateLimiter, verifier: TokenVerifier) -> None:
        self._rate: RateLimitItem = parse_rate(rate)
        self._limiter = limiter
        self._verifier = verifier

    async def count(self, user_id: str) -> None:
        """One checkout by `user_id`; TooManyRequests (429) past the rate."""
        await self._limiter.hit(self._rate, "checkout", user_id)

    async def count_bearer(self, authorization: str) -> None:
        """Count the checkout of the user a bearer token names. A token that does not
        verify is not counted here: the order service refuses it with its own 401."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return
        try:
            user = await self._verifier.verify(token.strip())
        except Problem:
            return
        await self.count(user.user_id)

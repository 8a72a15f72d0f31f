"""The ops API of `bazaar up`, as the gateway's ops page reads it: JSON over HTTP from the
runner's ops server (`BAZAAR_OPS_API_URL`), or none where it does not run."""

from __future__ import annotations

from typing import Any

import httpx

from bazaar.platform.transport import ServiceTransport

OPS_TIMEOUT = 5.0


class OpsUnavailable(Exception):
    """The ops API is not configured, or did not answer."""


class OpsApi:
    """The ops API of `bazaar up` (JSON over HTTP), or none."""

    def __init__(self, url: str, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._client = (
            httpx.AsyncClient(
                base_url=self.url,
                timeout=OPS_TIMEOUT,
                transport=transport or ServiceTransport(max_connections=4),
            )
            if url
            else None
        )

    async def get(self, path: str) -> dict[str, Any] | None:
        """The JSON at `path`; None for a 404."""
        if self._client is None:
            raise OpsUnavailable("no ops API configured (BAZAAR_OPS_API_URL)")
        try:
            answer = await self._client.get(path)
        except httpx.HTTPError as exc:
            raise OpsUnavailable(f"the ops API at {self.url} did not answer: {exc}") from exc
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise OpsUnavailable(f"the ops API answered {answer.status_code}")
        body: dict[str, Any] = answer.json()
        return body

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

"""A ceiling on request bodies for ASGI apps (`web.create_app` installs it): a body larger
than the limit is a 413 problem, whether its `Content-Length` says so up front or a
chunked body only grows past it while it is read. No service reads megabytes it never
needed, so no client can make it hold them in memory."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bazaar.platform.problems import PROBLEM_JSON, problem_body

DEFAULT_MAX_BODY_BYTES = 64 * 1024


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_too_large(scope["headers"]):
            await _refuse(scope, send, self.limit)
            return
        received = 0
        refused = started = False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Answer now; to the app the client has gone away, so it stops reading.
                    if not started and not refused:
                        refused = True
                        await _refuse(scope, send, self.limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is the answer; whatever the app says after it is dropped
            started = True
            await send(message)

        await self.app(scope, counted, guarded)

    def _declared_too_large(self, headers: list[tuple[bytes, bytes]]) -> bool:
        return any(
            name == b"content-length" and value.isdigit() and int(value) > self.limit
            for name, value in headers
        )


async def _refuse(scope: Scope, send: Send, limit: int) -> None:
    body = json.dumps(
        problem_body(413, f"request body larger than {limit} bytes", instance=scope["path"])
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

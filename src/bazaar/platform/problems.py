"""RFC 9457 problem details: the one error shape of every HTTP service."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """Raise from any layer to answer with a problem+json of this status and detail."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.type = type_
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        return problem_body(self.status, self.detail, self.title, self.type, instance, **self.extra)


def problem_body(
    status: int,
    detail: str,
    title: str | None = None,
    type_: str = "about:blank",
    instance: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


class NotFound(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(404, detail)


class Conflict(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(409, detail)


class Unprocessable(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(422, detail)

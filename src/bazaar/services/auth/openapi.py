"""The OpenAPI document of the auth API, served at `/openapi.json` like every service's.

Flask makes none by itself; this one is built from the same pydantic models that
validate the requests, so it cannot drift from what the service accepts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bazaar.services.auth.schemas import LoginBody, SignupBody, TokenResponse, UserPublic

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["type", "title", "status", "detail"],
}
JWKS_SCHEMA = {
    "type": "object",
    "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
    "required": ["keys"],
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def _problems(*statuses: int) -> dict[str, Any]:
    problem = _json(_ref("Problem"), "application/problem+json")
    return {str(status): {"description": "a problem", **problem} for status in statuses}


def _operation(
    summary: str,
    responses: dict[str, Any],
    body: type[BaseModel] | None = None,
    secured: bool = False,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": ["auth"], "responses": responses}
    if body:
        operation["requestBody"] = {"required": True, **_json(_ref(body.__name__))}
    if secured:
        operation["security"] = [{"bearer": []}]
    return operation


def openapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {"Problem": PROBLEM_SCHEMA, "JWKS": JWKS_SCHEMA}
    for model in (SignupBody, LoginBody, TokenResponse, UserPublic):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    issued = {"description": "signed in", **_json(_ref("TokenResponse"))}
    return {
        "openapi": "3.1.0",
        "info": {"title": "bazaar auth", "version": "1"},
        "paths": {
            "/api/auth/signup": {
                "post": _operation(
                    "Create a customer account and sign in",
                    {"201": issued, **_problems(409, 413, 415, 422, 429)},
                    body=SignupBody,
                )
            },
            "/api/auth/login": {
                "post": _operation(
                    "Sign in", {"200": issued, **_problems(401, 413, 415, 422, 429)}, body=LoginBody
                )
            },
            "/api/auth/me": {
                "get": _operation(
                    "The signed-in user",
                    {
                        "200": {"description": "the user", **_json(_ref("UserPublic"))},
                        **_problems(401),
                    },
                    secured=True,
                )
            },
            "/.well-known/jwks.json": {
                "get": _operation(
                    "The public keys that verify access tokens",
                    {"200": {"description": "the key set", **_json(_ref("JWKS"))}},
                )
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }

"""HTTP entrypoints: turn a request into a call of the service layer, and back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from flask import Blueprint, Flask, current_app

from bazaar.platform.flaskapp import SyncDatabase, bearer_token, json_body
from bazaar.platform.problems import Conflict, Problem
from bazaar.platform.tokens import InvalidToken
from bazaar.services.auth import domain, handlers
from bazaar.services.auth.keys import Keyring
from bazaar.services.auth.openapi import openapi_document
from bazaar.services.auth.passwords import Passwords
from bazaar.services.auth.schemas import LoginBody, SignupBody, TokenResponse, UserPublic
from bazaar.services.auth.throttling import Throttle

blueprint = Blueprint("auth", __name__)

# Tokens must not end up in a shared cache (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Verifiers refetch on an unknown kid anyway; a short cache spares the service.
JWKS_CACHE = {"Cache-Control": "public, max-age=60"}

JsonReply = tuple[dict[str, Any], int, dict[str, str]]


@dataclass(frozen=True)
class Dependencies:
    db: SyncDatabase
    passwords: Passwords
    keyring: Keyring
    throttle: Throttle


def install(app: Flask, dependencies: Dependencies) -> None:
    app.extensions["bazaar.auth"] = dependencies
    app.register_blueprint(blueprint)


def _deps() -> Dependencies:
    return cast(Dependencies, current_app.extensions["bazaar.auth"])


def _bad_credentials() -> Problem:
    return Problem(401, "wrong email or password", headers={"WWW-Authenticate": "Bearer"})


@blueprint.post("/api/auth/signup")
def signup() -> JsonReply:
    deps = _deps()
    deps.throttle.count_address("signup")
    body = json_body(SignupBody)
    deps.throttle.count_account("signup", body.email)
    command = handlers.Signup(body.email, body.password, body.name)
    try:
        issued = handlers.signup(deps.db, deps.passwords, deps.keyring, command)
    except domain.EmailTaken:
        raise Conflict("an account with this email already exists") from None
    return TokenResponse.of(issued).model_dump(), 201, NO_STORE


@blueprint.post("/api/auth/login")
def login() -> JsonReply:
    deps = _deps()
    deps.throttle.count_address("login")
    body = json_body(LoginBody)
    deps.throttle.count_account("login", body.email)
    command = handlers.Login(body.email, body.password)
    try:
        issued = handlers.login(deps.db, deps.passwords, deps.keyring, command)
    except domain.BadCredentials:
        raise _bad_credentials() from None
    return TokenResponse.of(issued).model_dump(), 200, NO_STORE


@blueprint.get("/api/auth/me")
def me() -> JsonReply:
    try:
        user = handlers.authenticate(_deps().db, _deps().keyring, bearer_token())
    except domain.UnknownUser:
        raise InvalidToken("the token's user no longer exists") from None
    return UserPublic.of(user).model_dump(), 200, {"Cache-Control": "no-store"}


@blueprint.get("/.well-known/jwks.json")
def jwks() -> JsonReply:
    return handlers.jwks(_deps().db, _deps().keyring), 200, JWKS_CACHE


@blueprint.get("/openapi.json")
def openapi() -> JsonReply:
    return openapi_document(), 200, {}

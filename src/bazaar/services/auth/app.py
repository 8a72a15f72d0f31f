"""HTTP entrypoints: turn a request into a call of the service layer, and back."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from bazaar.platform.flaskapp import bearer_token, json_body, uses
from bazaar.platform.problems import Conflict, Problem
from bazaar.platform.tokens import InvalidToken
from bazaar.services.auth import domain
from bazaar.services.auth.handlers import AuthService, Login, Signup
from bazaar.services.auth.openapi import openapi_document
from bazaar.services.auth.schemas import LoginBody, SignupBody, TokenResponse, UserPublic

blueprint = Blueprint("auth", __name__)

# Tokens must not end up in a shared cache (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Verifiers refetch on an unknown kid anyway; a short cache spares the service.
JWKS_CACHE = {"Cache-Control": "public, max-age=60"}

JsonReply = tuple[dict[str, Any], int, dict[str, str]]


def _bad_credentials() -> Problem:
    return Problem(401, "wrong email or password", headers={"WWW-Authenticate": "Bearer"})


@blueprint.post("/api/auth/signup")
def signup() -> JsonReply:
    auth = uses(AuthService)
    auth.throttle.count_address("signup")
    body = json_body(SignupBody)
    auth.throttle.count_account("signup", body.email)
    try:
        issued = auth.signup(Signup(body.email, body.password, body.name))
    except domain.EmailTaken:
        raise Conflict("an account with this email already exists") from None
    return TokenResponse.of(issued).model_dump(), 201, NO_STORE


@blueprint.post("/api/auth/login")
def login() -> JsonReply:
    auth = uses(AuthService)
    auth.throttle.count_address("login")
    body = json_body(LoginBody)
    auth.throttle.count_account("login", body.email)
    try:
        issued = auth.login(Login(body.email, body.password))
    except domain.BadCredentials:
        raise _bad_credentials() from None
    return TokenResponse.of(issued).model_dump(), 200, NO_STORE


@blueprint.get("/api/auth/me")
def me() -> JsonReply:
    try:
        user = uses(AuthService).authenticate(bearer_token())
    except domain.UnknownUser:
        raise InvalidToken("the token's user no longer exists") from None
    return UserPublic.of(user).model_dump(), 200, {"Cache-Control": "no-store"}


@blueprint.get("/.well-known/jwks.json")
def jwks() -> JsonReply:
    return uses(AuthService).jwks(), 200, JWKS_CACHE


@blueprint.get("/openapi.json")
def openapi() -> JsonReply:
    return openapi_document(), 200, {}

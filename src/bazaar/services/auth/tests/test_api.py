import json
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from werkzeug.test import TestResponse

from bazaar.platform.flaskapp import SyncDatabase, provided
from bazaar.platform.tokens import InvalidToken, TokenVerifier
from bazaar.services.auth.handlers import AuthService
from bazaar.services.auth.store import UserRow
from bazaar.testing import TokenMinter

PASSWORD = "correct horse"
GOOD = {"email": "a@example.com", "password": PASSWORD, "name": "A"}
PROBLEM = "application/problem+json"


def body(answer: TestResponse) -> dict[str, Any]:
    data = answer.get_json()
    assert isinstance(data, dict), answer.data
    return data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.data
    assert answer.headers["Content-Type"] == PROBLEM
    problem = body(answer)
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    return problem


def users_in(db: SyncDatabase) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(UserRow)) or 0


def test_signup_login_and_me(client: FlaskClient, sign_up: Any) -> None:
    created = sign_up("Alice@Example.com")
    assert created["token_type"] == "bearer"
    user = created["user"]
    assert user == {
        "id": user["id"],
        "email": "alice@example.com",
        "name": "Alice",
        "roles": ["customer"],
    }

    login = client.post(
        "/api/auth/login", json={"email": "ALICE@example.com", "password": PASSWORD}
    )
    assert login.status_code == 200
    assert login.headers["Cache-Control"] == "no-store"
    assert body(login)["user"] == user
    assert body(login)["access_token"] != created["access_token"]

    me = client.get("/api/auth/me", headers=bearer(body(login)["access_token"]))
    assert me.status_code == 200
    assert body(me) == user


def test_an_email_is_taken_whatever_its_case(
    client: FlaskClient, sign_up: Any, db: SyncDatabase
) -> None:
    sign_up("bob@example.com")
    again = client.post(
        "/api/auth/signup",
        json={"email": "BOB@Example.com", "password": "another one", "name": "B"},
    )
    assert "exists" in assert_problem(again, 409)["detail"]
    assert users_in(db) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD, "name": "A"}, "email"),
        ({"email": "a@example.com", "password": "short", "name": "A"}, "password"),
        ({"email": "a@example.com", "password": "x" * 129, "name": "A"}, "password"),
        ({"email": "a@example.com", "password": PASSWORD, "name": "  "}, "name"),
        ({"email": "a@example.com", "password": PASSWORD, "name": "n" * 101}, "name"),
        ({"email": "a@example.com", "password": PASSWORD}, "name"),
        ({"email": "a@example.com", "password": 12345678, "name": "A"}, "password"),
        ({"email": ["a@example.com"], "password": PASSWORD, "name": "A"}, "email"),
        (
            {"email": "a@example.com", "password": PASSWORD, "name": "A", "roles": ["admin"]},
            "roles",
        ),
        ({"email": "a@example.com", "password": PASSWORD, "name": "A", "id": "mine"}, "id"),
    ],
)
def test_bad_signups_are_422_and_change_nothing(
    client: FlaskClient, db: SyncDatabase, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(client.post("/api/auth/signup", json=body), 422)
    assert [field] in [error["loc"] for error in problem["errors"]]
    assert field in problem["detail"]
    assert users_in(db) == 0


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("email=a@example.com", "application/x-www-form-urlencoded", 415),
        ('{"email": "a@example.com"}', "text/plain", 415),
        ("", "application/json", 422),
        ("{not json", "application/json", 422),
        ('["a list"]', "application/json", 422),
        ("null", "application/json", 422),
        (b"\xff\xfe", "application/json", 422),
        ("[" * 20_000 + "]" * 20_000, "application/json", 422),
        (
            json.dumps({**GOOD, "password": "x" * 8}).replace("xxxxxxxx", "\\ud800" * 8),
            "application/json",
            422,
        ),
    ],
)
def test_bodies_that_are_not_a_json_object_are_refused(
    client: FlaskClient, db: SyncDatabase, data: str, content_type: str, status: int
) -> None:
    for path in ("/api/auth/signup", "/api/auth/login"):
        assert_problem(client.post(path, data=data, content_type=content_type), status)
    assert users_in(db) == 0


def test_a_huge_body_is_refused(client: FlaskClient) -> None:
    answer = client.post(
        "/api/auth/signup", data="x" * (2 * 1024 * 1024), content_type="application/json"
    )
    assert_problem(answer, 413)


def test_a_role_cannot_be_chosen_at_signup(client: FlaskClient, db: SyncDatabase) -> None:
    attempt = {"email": "eve@example.com", "password": PASSWORD, "name": "Eve", "roles": ["admin"]}
    assert_problem(client.post("/api/auth/signup", json=attempt), 422)
    del attempt["roles"]
    created = client.post("/api/auth/signup", json=attempt)
    assert body(created)["user"]["roles"] == ["customer"]
    assert jwt.decode(body(created)["access_token"], options={"verify_signature": False})[
        "roles"
    ] == ["customer"]


def test_wrong_password_and_unknown_email_get_the_same_401(
    client: FlaskClient, sign_up: Any
) -> None:
    sign_up("carol@example.com")
    wrong = client.post(
        "/api/auth/login", json={"email": "carol@example.com", "password": "nope nope"}
    )
    unknown = client.post(
        "/api/auth/login", json={"email": "who@example.com", "password": "nope nope"}
    )
    assert assert_problem(wrong, 401) == assert_problem(unknown, 401)
    assert "access_token" not in body(wrong)


def test_an_unknown_email_still_costs_a_password_check(app: Flask) -> None:
    passwords = provided(app, AuthService).passwords
    checks: list[str] = []
    real_verify = passwords.verify

    def spy(hash_: str, password: str) -> bool:
        checks.append(hash_)
        return bool(real_verify(hash_, password))

    passwords.verify = spy
    answer = app.test_client().post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    assert answer.status_code == 401
    assert len(checks) == 1
    assert checks[0].startswith("$argon2id$")


async def test_tokens_verify_with_the_platform_verifier_and_the_served_jwks(
    client: FlaskClient, sign_up: Any
) -> None:
    token = sign_up("dave@example.com")["access_token"]
    verifier = TokenVerifier(jwks=body(client.get("/.well-known/jwks.json")))
    principal = await verifier.verify(token)
    assert principal.email == "dave@example.com"
    assert principal.roles == frozenset({"customer"})
    assert not principal.is_admin

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "at+jwt"
    assert header["kid"] in {k["kid"] for k in body(client.get("/.well-known/jwks.json"))["keys"]}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {
        "iss",
        "aud",
        "sub",
        "email",
        "name",
        "roles",
        "iat",
        "nbf",
        "exp",
        "jti",
    }
    assert claims["exp"] - claims["iat"] == 900
    assert claims["sub"] == principal.user_id


def tamper(token: str) -> str:
    header, _payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.api_jws.base64url_encode(
        jwt.api_jwt.json.dumps({**claims, "roles": ["customer", "admin"]}).encode()
    ).decode()
    return f"{header}.{forged}.{signature}"


async def test_tampered_and_foreign_tokens_are_refused(client: FlaskClient, sign_up: Any) -> None:
    token = sign_up("mallory@example.com")["access_token"]
    verifier = TokenVerifier(jwks=body(client.get("/.well-known/jwks.json")))
    with pytest.raises(InvalidToken):
        await verifier.verify(tamper(token))
    foreign = TokenMinter().token(roles=["customer", "admin"])
    for bad in [tamper(token), foreign, token[:-4] + "AAAA", "garbage", token + "."]:
        answer = client.get("/api/auth/me", headers=bearer(bad))
        assert_problem(answer, 401)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_me_needs_a_bearer_token(client: FlaskClient) -> None:
    assert "bearer" in assert_problem(client.get("/api/auth/me"), 401)["detail"]
    assert_problem(client.get("/api/auth/me", headers={"Authorization": "Basic YTpi"}), 401)


def test_passwords_are_stored_as_argon2id(
    client: FlaskClient, sign_up: Any, db: SyncDatabase
) -> None:
    sign_up("erin@example.com")
    with db.transaction() as session:
        stored = session.scalar(select(UserRow.password_hash))
    assert stored is not None
    assert stored.startswith("$argon2id$v=19$")
    assert PASSWORD not in stored


def test_the_jwks_has_public_keys_only(client: FlaskClient) -> None:
    answer = client.get("/.well-known/jwks.json")
    assert answer.status_code == 200
    keys = body(answer)["keys"]
    assert len(keys) == 1
    for key in keys:
        assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == (
            "OKP",
            "Ed25519",
            "EdDSA",
            "sig",
        )
    assert b"PRIVATE" not in answer.data


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("GET", "/api/auth/signup", 405),
        ("DELETE", "/api/auth/me", 405),
        ("POST", "/.well-known/jwks.json", 405),
    ],
)
def test_unknown_routes_and_methods_are_problems(
    client: FlaskClient, method: str, path: str, status: int
) -> None:
    body = assert_problem(client.open(path, method=method), status)
    assert body["instance"] == path
    assert path in body["detail"]


def test_a_crash_is_a_500_problem_without_details(app: Flask) -> None:
    def explode() -> str:
        raise RuntimeError("secret internals")

    app.add_url_rule("/explode", view_func=explode)
    answer = app.test_client().get("/explode")
    body = assert_problem(answer, 500)
    assert "secret" not in body["detail"]
    assert answer.headers["X-Request-ID"]


def test_request_ids_are_echoed_or_made(client: FlaskClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == (
        "abc-123"
    )
    made = client.get("/nowhere", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["X-Request-ID"] != "bad id with spaces"
    assert len(made.headers["X-Request-ID"]) == 32


def test_operations_endpoints(client: FlaskClient, sign_up: Any) -> None:
    assert body(client.get("/healthz")) == {"status": "ok"}
    assert body(client.get("/readyz")) == {"status": "ready"}
    sign_up("frank@example.com")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert (
        'bazaar_http_requests_total{method="POST",route="/api/auth/signup",service="auth",status="201"}'
        in metrics.text
    )
    assert (
        'bazaar_http_request_seconds_bucket{le="0.001",method="GET",route="/readyz"' in metrics.text
    )


def test_readyz_is_503_when_the_keys_table_is_gone(app: Flask, db: SyncDatabase) -> None:
    with db.transaction() as session:
        session.execute(text("DROP TABLE signing_keys"))
    body = assert_problem(app.test_client().get("/readyz"), 503)
    assert "signing_keys" in body["detail"]


def test_the_openapi_document_describes_the_api(client: FlaskClient) -> None:
    document = body(client.get("/openapi.json"))
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/api/auth/signup",
        "/api/auth/login",
        "/api/auth/me",
        "/.well-known/jwks.json",
    }
    signup = document["components"]["schemas"]["SignupBody"]
    assert set(signup["required"]) == {"email", "password", "name"}
    assert signup["additionalProperties"] is False
    assert "roles" not in signup["properties"]

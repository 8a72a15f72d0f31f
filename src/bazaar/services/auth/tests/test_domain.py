from datetime import UTC, datetime, timedelta

import pytest

from bazaar.services.auth import domain
from bazaar.services.auth.domain import SigningKey, User

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Alice@Example.COM", "alice@example.com"),
        ("  bob.smith+shop@mail.example.org ", "bob.smith+shop@mail.example.org"),
        ("o'hara@xn--bcher-kva.example", "o'hara@xn--bcher-kva.example"),
    ],
)
def test_valid_emails_are_normalized(given: str, stored: str) -> None:
    assert domain.check_email(given) == stored


@pytest.mark.parametrize(
    "email",
    [
        "",
        "alice",
        "@example.com",
        "alice@",
        "alice@example",
        "alice@@example.com",
        "al ice@example.com",
        ".alice@example.com",
        "al..ice@example.com",
        "alice@-example.com",
        "alice@example..com",
        "alice@example.c0m",
        "a" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
        "alice\n@example.com",
        "\u212aate@example.com",  # a Kelvin sign, not a k
    ],
)
def test_invalid_emails_are_refused(email: str) -> None:
    with pytest.raises(ValueError):
        domain.check_email(email)


def test_names_are_trimmed_and_bounded() -> None:
    assert domain.check_name("  Ada Lovelace ") == "Ada Lovelace"
    assert domain.check_name("Zoë 李") == "Zoë 李"
    bad_names = ["", "   ", "x" * 101, "evil\x00name", "line\nbreak", "\u202eevil", "a\u200bb"]
    for bad in [*bad_names, "\nAda", "Ada\t"]:  # not even as blanks around the name
        with pytest.raises(ValueError):
            domain.check_name(bad)
    # Not yet assigned, or private use: perhaps letters of a newer Unicode; no harm.
    assert domain.check_name("Ann \U000cf0c6\ue000") == "Ann \U000cf0c6\ue000"


def test_token_claims_are_exactly_the_contract() -> None:
    user = User("u1", "a@example.com", "Ann", ("customer",), "hash", NOW)
    claims = domain.access_token_claims(user, NOW, "j1")
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
    assert claims["iss"] == "bazaar-auth"
    assert claims["aud"] == "bazaar"
    assert claims["sub"] == "u1"
    assert claims["roles"] == ["customer"]
    assert claims["nbf"] == claims["iat"] == int(NOW.timestamp())
    assert claims["exp"] == int(NOW.timestamp()) + 15 * 60
    assert "hash" not in claims.values()


def key(kid: str, minutes_ago: int, active: bool = True) -> SigningKey:
    return SigningKey(kid, "pem", NOW - timedelta(minutes=minutes_ago), active)


def test_the_newest_active_key_signs() -> None:
    assert domain.current_signer([], NOW) is None
    keys = [key("old", 60), key("new", 1), key("newest-but-retired", 0, active=False)]
    signer = domain.current_signer(keys, NOW)
    assert signer is not None
    assert signer.kid == "new"


ACTIVATION = timedelta(minutes=2)


def test_a_new_key_signs_only_once_it_has_been_published_long_enough() -> None:
    rotated = [key("old", 60), key("new", 1)]
    assert domain.current_signer(rotated, NOW, ACTIVATION) == rotated[0]
    matured = [key("old", 60), key("new", 2)]
    assert domain.current_signer(matured, NOW, ACTIVATION) == matured[1]
    # The very first key signs at once; a second one made right after it waits its turn.
    first_start = [key("first", 0), key("second", 0)]
    first_start[1] = SigningKey("second", "pem", NOW + timedelta(seconds=1))
    assert domain.current_signer(first_start, NOW, ACTIVATION) == first_start[0]


def test_a_replaced_key_is_retired_only_once_its_tokens_have_expired() -> None:
    just_replaced = [key("new", 0), key("old", 30)]
    assert domain.retirable_keys(just_replaced, NOW) == []
    # Replaced 19 minutes ago: tokens lived 15 minutes, plus the 5 minute margin.
    almost = [key("new", 19), key("old", 60)]
    assert domain.retirable_keys(almost, NOW) == []
    long_ago = [key("newest", 0), key("new", 21), key("old", 60), key("gone", 90, active=False)]
    assert [k.kid for k in domain.retirable_keys(long_ago, NOW)] == ["old"]


def test_retirement_counts_from_when_the_successor_began_to_sign() -> None:
    # "new" was made 21 minutes ago but signed only from 19 minutes ago.
    keys = [key("new", 21), key("old", 60)]
    assert domain.retirable_keys(keys, NOW, ACTIVATION) == []
    assert [k.kid for k in domain.retirable_keys(keys, NOW + ACTIVATION)] == ["old"]

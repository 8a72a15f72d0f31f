"""The auth rules, free of I/O: what a user is, which emails and names are acceptable,
what an access token says, and which signing key signs and which may be retired."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

ISSUER = "bazaar-auth"
AUDIENCE = "bazaar"
TOKEN_LIFETIME = timedelta(minutes=15)
# A replaced key stays published this long past the last token it could have signed, so
# that verifiers with a skewed clock or a cached JWKS still accept that token.
RETIREMENT_MARGIN = timedelta(minutes=5)

CUSTOMER_ROLES = ("customer",)
ADMIN_ROLES = ("customer", "admin")

EMAIL_MAX_LENGTH = 254
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
NAME_MAX_LENGTH = 100

# What a name may not contain: controls (C0, C1), line and paragraph separators, and the
# invisible characters that disguise text (bidi overrides, zero-width ones, soft hyphen,
# BOM). A character class, not "any Unicode category C", so that the public API can
# document the rule exactly (the gateway's OpenAPI has the same class); unassigned and
# private-use characters pass, as they may be a newer Unicode's letters.
_NOT_IN_A_NAME = re.compile(
    r"[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    r"\u2060-\u206f\ufeff\ufff9-\ufffb]"
)

# Whole-string matches (fullmatch): `$` would let a trailing newline through.
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}")
_DOMAIN_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_TOP_LEVEL = re.compile(r"[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}")


class EmailTaken(Exception):
    """Another account already has this email (compared without case)."""


class BadCredentials(Exception):
    """The email or the password is wrong; which of the two is never said."""


class UnknownUser(Exception):
    """A valid token names a user that no longer exists."""


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str
    roles: tuple[str, ...]
    password_hash: str
    created_at: datetime


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key_pem: str
    created_at: datetime
    active: bool = True


def normalize_email(email: str) -> str:
    """The one spelling an email is stored and compared in: accounts differ by more than
    letter case."""
    return email.strip().lower()


def check_email(email: str) -> str:
    """The normalized email, or ValueError saying what is wrong with it. Deliberately
    plain ASCII addresses (dot-atom local part, a domain with a real top level): what a
    shop can send mail to, not every form RFC 5322 allows."""
    if not email.strip().isascii():  # before lower(): "\u212a" (Kelvin) lowers to "k"
        raise ValueError("an email is plain ASCII, like name@example.com")
    email = normalize_email(email)
    if len(email) > EMAIL_MAX_LENGTH:
        raise ValueError(f"an email has at most {EMAIL_MAX_LENGTH} characters")
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("an email looks like name@example.com")
    if (
        not _LOCAL_PART.fullmatch(local)
        or local.startswith(".")
        or local.endswith(".")
        or ".." in local
    ):
        raise ValueError("the part before @ is not a valid mailbox name")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
        raise ValueError("the part after @ is not a valid domain")
    if not _TOP_LEVEL.fullmatch(labels[-1]):
        raise ValueError("the domain has no valid top level (like .com)")
    return email


def check_name(name: str) -> str:
    """The display name without surrounding blanks, or ValueError."""
    if _NOT_IN_A_NAME.search(name):  # anywhere, blanks around it included
        raise ValueError("a name cannot contain control or invisible formatting characters")
    name = name.strip()
    if not name:
        raise ValueError("a name needs at least one visible character")
    if len(name) > NAME_MAX_LENGTH:
        raise ValueError(f"a name has at most {NAME_MAX_LENGTH} characters")
    return name


def access_token_claims(user: User, now: datetime, jti: str) -> dict[str, object]:
    """Exactly the claims the contract lists, no more: tokens carry no secrets."""
    issued_at = int(now.timestamp())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user.id,
        "email": user.email,
        "name": user.name,
        "roles": list(user.roles),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + int(TOKEN_LIFETIME.total_seconds()),
        "jti": jti,
    }


def current_signer(
    keys: Sequence[SigningKey], now: datetime, activation: timedelta = timedelta(0)
) -> SigningKey | None:
    """The key that signs: the newest active key published for at least `activation`, so
    every verifier has had time to fetch it before it meets a token it signed; while none
    is that old (the very first start), the longest-published one."""
    active = sorted((k for k in keys if k.active), key=lambda k: k.created_at)
    mature = [key for key in active if now - key.created_at >= activation]
    if mature:
        return mature[-1]
    return active[0] if active else None


def retirable_keys(
    keys: Sequence[SigningKey], now: datetime, activation: timedelta = timedelta(0)
) -> list[SigningKey]:
    """Active keys no live token can name: each stopped signing (when its successor
    matured) longer ago than a token lives, plus a margin, so all it signed has expired."""
    active = sorted((k for k in keys if k.active), key=lambda k: k.created_at, reverse=True)
    return [
        older
        for newer, older in itertools.pairwise(active)
        if now - (newer.created_at + activation) > TOKEN_LIFETIME + RETIREMENT_MARGIN
    ]

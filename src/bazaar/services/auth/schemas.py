"""What comes in and goes out: HTTP bodies and the seed file, validated by pydantic.

Unknown fields are refused, so a client cannot slip in `roles` or `id`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from bazaar.services.auth import domain
from bazaar.services.auth.domain import User
from bazaar.services.auth.handlers import Issued

Email = Annotated[
    str,
    Field(max_length=domain.EMAIL_MAX_LENGTH, json_schema_extra={"format": "email"}),
    AfterValidator(domain.check_email),
]
NewPassword = Annotated[
    str, Field(min_length=domain.PASSWORD_MIN_LENGTH, max_length=domain.PASSWORD_MAX_LENGTH)
]
# At login only the length is bounded: no hashing of megabytes, no hints about the policy.
GivenPassword = Annotated[str, Field(min_length=1, max_length=domain.PASSWORD_MAX_LENGTH)]
Name = Annotated[str, Field(max_length=domain.NAME_MAX_LENGTH), AfterValidator(domain.check_name)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignupBody(Strict):
    email: Email
    password: NewPassword
    name: Name


class LoginBody(Strict):
    email: Email
    password: GivenPassword


class SeedFile(Strict):
    admins: list[SignupBody] = Field(default_factory=list)


class UserPublic(BaseModel):
    id: str
    email: str
    name: str
    roles: list[str]

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(id=user.id, email=user.email, name=user.name, roles=list(user.roles))


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    user: UserPublic

    @classmethod
    def of(cls, issued: Issued) -> TokenResponse:
        return cls(access_token=issued.access_token, user=UserPublic.of(issued.user))

"""The users and signing_keys tables and their repositories (synchronous: Flask is)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import JSON, Boolean, String, Text, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bazaar.platform.db import UtcDateTime
from bazaar.services.auth.domain import SigningKey, User


class Base(DeclarativeBase):
    pass


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Stored normalized (lower case), so this constraint is the case-insensitive one.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    def to_domain(self) -> User:
        return User(
            id=self.id,
            email=self.email,
            name=self.name,
            roles=tuple(self.roles),
            password_hash=self.password_hash,
            created_at=self.created_at,
        )


class SigningKeyRow(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_key_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # False once retired: no longer published, so nothing it signed verifies any more.
    active: Mapped[bool] = mapped_column(Boolean, index=True)

    def to_domain(self) -> SigningKey:
        return SigningKey(self.kid, self.private_key_pem, self.created_at, self.active)


metadata = Base.metadata


class UserRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def by_email(self, email: str) -> User | None:
        row = self._session.scalar(select(UserRow).where(UserRow.email == email))
        return row.to_domain() if row else None

    def by_id(self, user_id: str) -> User | None:
        row = self._session.get(UserRow, user_id)
        return row.to_domain() if row else None

    def add(self, user: User) -> None:
        self._session.add(
            UserRow(
                id=user.id,
                email=user.email,
                name=user.name,
                password_hash=user.password_hash,
                roles=list(user.roles),
                created_at=user.created_at,
            )
        )
        self._session.flush()  # a taken email fails here, inside the caller's try

    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        self._session.execute(
            update(UserRow).where(UserRow.id == user_id).values(password_hash=password_hash)
        )


class KeyRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def active(self) -> Sequence[SigningKey]:
        rows = self._session.scalars(
            select(SigningKeyRow)
            .where(SigningKeyRow.active.is_(True))
            .order_by(SigningKeyRow.created_at.desc())
        )
        return [row.to_domain() for row in rows]

    def add(self, key: SigningKey) -> None:
        self._session.add(
            SigningKeyRow(
                kid=key.kid,
                private_key_pem=key.private_key_pem,
                created_at=key.created_at,
                active=key.active,
            )
        )

    def replace_pem(self, kid: str, private_key_pem: str) -> None:
        self._session.execute(
            update(SigningKeyRow)
            .where(SigningKeyRow.kid == kid)
            .values(private_key_pem=private_key_pem)
        )

    def retire(self, kids: Sequence[str]) -> None:
        if kids:
            self._session.execute(
                update(SigningKeyRow).where(SigningKeyRow.kid.in_(kids)).values(active=False)
            )

"""Organisations, API keys and users (ORM sessions: these are not hot paths)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, func, select

from admin.models import ApiKey, Machine, Organization, User


def org_by_name(session: Session, name: str) -> Organization | None:
    return session.exec(select(Organization).where(Organization.name == name)).first()


def org_by_id(session: Session, org_id: int) -> Organization | None:
    return session.get(Organization, org_id)


def key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.exec(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()


def key_by_id(session: Session, *, org_id: int, key_id: int) -> ApiKey | None:
    return session.exec(select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.id == key_id)).first()


def keys_of(session: Session, *, org_id: int) -> Sequence[ApiKey]:
    return session.exec(select(ApiKey).where(ApiKey.org_id == org_id).order_by(ApiKey.id)).all()


def user_by_email(session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == email)).first()


def user_by_id(session: Session, *, org_id: int, user_id: int) -> User | None:
    return session.exec(select(User).where(User.org_id == org_id, User.id == user_id)).first()


def users_of(session: Session, *, org_id: int) -> Sequence[User]:
    return session.exec(select(User).where(User.org_id == org_id).order_by(User.email)).all()


def count_admins(session: Session, *, org_id: int) -> int:
    return session.exec(select(func.count()).where(User.org_id == org_id, User.role == "admin")).one()


def count_machines(session: Session, *, org_id: int) -> int:
    return session.exec(select(func.count()).select_from(Machine).where(Machine.org_id == org_id)).one()

"""Web sessions and sign-in failures (ORM sessions: sign-in and page checks, not hot paths)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, col, delete, select

from admin.models import LoginFailure, Organization, User, WebSession


def live_session(session: Session, *, token_hash: str, now: float) -> tuple[WebSession, User, Organization] | None:
    """The session with this token, its user and organisation, when the session has not expired
    and still carries the user's current secret (a changed secret or a removed user ends it)."""
    row = session.exec(
        select(WebSession, User, Organization)
        .join(User, col(User.id) == WebSession.user_id)
        .join(Organization, col(Organization.id) == User.org_id)
        .where(
            WebSession.token_hash == token_hash,
            WebSession.expires_at > now,
            WebSession.user_secret == User.session_secret,
            WebSession.org_id == User.org_id,
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2])


def live_token_hashes(session: Session, *, token_hashes: Iterable[str], now: float) -> set[str]:
    """Which of these sessions are still alive (one query for every page open in this process)."""
    wanted = list(token_hashes)
    if not wanted:
        return set()
    rows = session.exec(
        select(WebSession.token_hash)
        .join(User, col(User.id) == WebSession.user_id)
        .where(
            col(WebSession.token_hash).in_(wanted),
            WebSession.expires_at > now,
            WebSession.user_secret == User.session_secret,
            WebSession.org_id == User.org_id,
        )
    ).all()
    return {h for h in rows if h is not None}


def by_handoff(session: Session, handoff_hash: str) -> WebSession | None:
    return session.exec(select(WebSession).where(WebSession.handoff_hash == handoff_hash)).first()


def delete_by_token(session: Session, token_hash: str) -> None:
    session.exec(delete(WebSession).where(col(WebSession.token_hash) == token_hash))


def delete_of_user(session: Session, user_id: int) -> None:
    session.exec(delete(WebSession).where(col(WebSession.user_id) == user_id))


def delete_expired(session: Session, now: float) -> int:
    return session.exec(delete(WebSession).where(col(WebSession.expires_at) <= now)).rowcount


def failures(session: Session, keys: list[str]) -> list[LoginFailure]:
    return list(session.exec(select(LoginFailure).where(col(LoginFailure.key).in_(keys))).all())


def delete_failures(session: Session, keys: list[str]) -> None:
    session.exec(delete(LoginFailure).where(col(LoginFailure.key).in_(keys)))


def delete_stale_failures(session: Session, before: float) -> int:
    return session.exec(delete(LoginFailure).where(col(LoginFailure.updated_at) < before)).rowcount

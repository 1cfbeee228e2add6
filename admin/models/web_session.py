"""Web UI sessions and sign-in failures, in the database so that every server process agrees."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class WebSession(SQLModel, table=True):
    """One signed-in browser. Made in two steps: the sign-in page's handler checks the password
    and leaves a one-time hand-off code valid for seconds; the browser then trades the code for
    the session cookie (a new random token, stored only as its keyed hash `token_hash`)."""

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str | None = Field(default=None, max_length=64, unique=True)
    handoff_hash: str | None = Field(default=None, max_length=64, unique=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    org_id: int = Field(foreign_key="organization.id")
    # The user's session_secret when the session was made: it must still match at each check.
    user_secret: str = Field(max_length=64)
    created_at: float
    expires_at: float = Field(index=True)


class LoginFailure(SQLModel, table=True):
    """Failed sign-ins counted for one key (an e-mail, a client network, or both): each failure
    beyond the free ones doubles the wait before the next attempt, up to a cap."""

    __tablename__ = "login_failure"

    key: str = Field(primary_key=True, max_length=400)
    failures: int = 0
    blocked_until: float = 0.0
    updated_at: float = Field(index=True)

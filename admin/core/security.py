"""API keys (fast hash: long random secrets) and passwords (slow hash: argon2, sign-in only)."""

from __future__ import annotations

import hashlib
import re
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from common.constants import API_KEY_MIN_RANDOM_CHARS, API_KEY_PREFIX

_API_KEY_RE = re.compile(rf"^{API_KEY_PREFIX}[A-Za-z0-9_-]{{{API_KEY_MIN_RANDOM_CHARS},200}}$")
_hasher = PasswordHasher()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def looks_like_api_key(value: str) -> bool:
    return bool(_API_KEY_RE.match(value))


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def dummy_password_hash() -> str:
    """Verified against when the e-mail is unknown, so sign-in takes as long either way.
    Made on first use: an argon2 hash costs tenths of a second, which no CLI command should pay."""
    return hash_password(secrets.token_urlsafe(16))

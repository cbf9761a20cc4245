"""Password hashing through passlib (the libpass fork): argon2 for new hashes, bcrypt still verifies."""

from __future__ import annotations

from passlib.context import CryptContext

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 128
# Characters bound what a person types; bytes bound what the hasher is fed (4 bytes per char at most).
MAX_PASSWORD_BYTES = 512

_context = CryptContext(schemes=["argon2", "bcrypt"], deprecated=["bcrypt"])


def password_problem(password: str) -> str | None:
    """Why a new password is not acceptable, or None."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"must be at least {MIN_PASSWORD_CHARS} characters"
    if len(password) > MAX_PASSWORD_CHARS or len(password.encode()) > MAX_PASSWORD_BYTES:
        return f"must be at most {MAX_PASSWORD_CHARS} characters"
    return None


def hash_password(password: str) -> str:
    return str(_context.hash(password))


def verify_password(password: str, password_hash: str) -> bool:
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return False
    try:
        return bool(_context.verify(password, password_hash))
    except (ValueError, TypeError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return bool(_context.needs_update(password_hash))


# A hash of nothing anyone knows, verified when an email is unknown, so that a login for an
# unknown email costs as much as one for a known email (no account probing by timing).
DUMMY_HASH = _context.hash("market-hub-dummy-password")

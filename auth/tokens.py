"""Access tokens: PyJWT with a pinned algorithm and required exp, iat and sub."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ISSUER = "market-hub"


class InvalidToken(Exception):
    """Missing, malformed, forged or expired."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: str
    role: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TokenIssuer:
    secret: str
    algorithm: str
    lifetime: timedelta

    def issue(self, user_id: str, role: str, *, now: datetime | None = None) -> str:
        issued = now or datetime.now(UTC)
        claims = {"sub": user_id, "role": role, "iat": issued, "exp": issued + self.lifetime, "iss": ISSUER}
        return jwt.encode(claims, self.secret, algorithm=self.algorithm)

    def verify(self, token: str) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[self.algorithm],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        subject, role = claims.get("sub"), claims.get("role")
        if not isinstance(subject, str) or not isinstance(role, str):
            raise InvalidToken("malformed claims")
        return TokenClaims(
            user_id=subject,
            role=role,
            issued_at=datetime.fromtimestamp(claims["iat"], UTC),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )

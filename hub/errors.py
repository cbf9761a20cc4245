"""Errors the domain raises; one middleware turns them into the DESIGN.md envelope.

No web framework here: the status is data, so domain code and Socket.IO handlers can raise
and inspect the same errors that REST maps to HTTP.
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    status: int = 500
    code: str = "INTERNAL_ERROR"
    default_message: str = "Internal error"

    def __init__(self, message: str | None = None, *, details: Any = None, code: str | None = None) -> None:
        self.message = message or self.default_message
        self.details = details
        if code is not None:
            self.code = code
        super().__init__(self.message)

    def envelope(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(HubError):
    status, code, default_message = 400, "BAD_REQUEST", "Bad request"


class Unauthorized(HubError):
    status, code, default_message = 401, "UNAUTHORIZED", "Authentication required"


class Forbidden(HubError):
    status, code, default_message = 403, "FORBIDDEN", "Not allowed"


class NotFound(HubError):
    status, code, default_message = 404, "NOT_FOUND", "Not found"


class Conflict(HubError):
    """409; the code says which conflict (EMAIL_TAKEN, INSUFFICIENT_STOCK, ...)."""

    status, code, default_message = 409, "CONFLICT", "Conflict"


class PayloadTooLarge(HubError):
    status, code, default_message = 413, "PAYLOAD_TOO_LARGE", "Request body too large"


class ValidationFailed(HubError):
    status, code, default_message = 422, "VALIDATION_ERROR", "Validation failed"


class RateLimited(HubError):
    status, code, default_message = 429, "RATE_LIMITED", "Too many requests"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class Unavailable(HubError):
    status, code, default_message = 503, "UNAVAILABLE", "Service temporarily unavailable"


class DatabaseUnavailable(Unavailable):
    """The database did not answer: what a driver error becomes (hub/database.py `database_errors`)."""

    default_message = "The database did not answer; try again shortly"

"""Errors a service function raises for the edge to turn into a clear 4xx (never a 500)."""

from __future__ import annotations

import uuid


class AppError(Exception):
    """A failure the caller can act on: HTTP status, a stable code, a message and the field at fault."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code

    def to_dict(self) -> dict:
        """The JSON body of the error response."""
        body = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return {"detail": body}


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Unprocessable(AppError):
    status_code = 422
    code = "invalid"


class TooManyRequests(AppError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ServiceUnavailable(AppError):
    status_code = 503
    code = "unavailable"


def id_or_404(value: str, *, field: str, message: str = "不存在") -> uuid.UUID:
    """The UUID a path parameter names; 404 naming `field` when it is not one (no such object can exist)."""
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise NotFound(message, field=field) from exc

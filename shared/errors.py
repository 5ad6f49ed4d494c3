"""The error hierarchy and, in one place, how each error maps to an HTTP status and code.

Handlers raise these; `shared.web` turns any of them into the standard envelope
``{"error": {"code", "message", "details", "request_id"}}``.
"""

from __future__ import annotations

from typing import Any


class SettingsError(RuntimeError):
    """A setting failed validation at start-up; the message names it."""


class AppError(Exception):
    """Base of every error a caller may see; subclasses fix the status and code."""

    status: int = 500
    code: str = "internal"

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.retry_after = retry_after
        self.headers = headers or {}


class InvalidJson(AppError):
    """The body is not JSON: malformed, nested too deeply, or holding an unreadable number."""

    status, code = 400, "invalid_json"


class BadRequest(AppError):
    """A request the model rejected, or an option this deployment does not know."""

    status, code = 400, "bad_request"


class Unauthenticated(AppError):
    """Missing, malformed, expired or otherwise invalid credentials."""

    status, code = 401, "unauthenticated"


class PermissionDenied(AppError):
    """The credential lacks the scope the route needs, or names a tool not the caller's."""

    status, code = 403, "permission_denied"


class NotFound(AppError):
    """No such resource for this caller (someone else's is reported the same way)."""

    status, code = 404, "not_found"


class Gone(AppError):
    """It existed and can no longer be used (an expired confirmation)."""

    status, code = 410, "gone"


class MethodNotAllowed(AppError):
    """The path exists, not with this method; ``details`` and ``Allow`` name those it has."""

    status, code = 405, "method_not_allowed"


class Conflict(AppError):
    """The state forbids it now: a request with this Idempotency-Key still runs, or the
    confirmation was already decided."""

    status, code = 409, "conflict"


class FailedPrecondition(AppError):
    """The request is valid but the state it needs is not there (a damaged backup, say)."""

    status, code = 409, "failed_precondition"


class PayloadTooLarge(AppError):
    """The body, or the message in it, is over the size limit."""

    status, code = 413, "payload_too_large"


class UnsupportedMediaType(AppError):
    """The Content-Type is not one the route reads (``application/json``)."""

    status, code = 415, "unsupported_media_type"


class ValidationFailed(AppError):
    """Invalid fields, query parameters or state (an Idempotency-Key reused with another
    body, a stale page token); ``details`` name each field."""

    status, code = 422, "validation_failed"


class UpgradeRequired(AppError):
    """A WebSocket route reached without the WebSocket handshake."""

    status, code = 426, "upgrade_required"


class RateLimited(AppError):
    """Too many requests for the caller or its address; retry after ``Retry-After`` seconds."""

    status, code = 429, "rate_limited"


class UpstreamError(AppError):
    """The model answered with an error we cannot retry or hide."""

    status, code = 502, "upstream_error"


class InvalidModelOutput(AppError):
    """The model's answer broke the request's response schema, even after one repair."""

    status, code = 502, "invalid_model_output"


class ModelUnavailable(AppError):
    """No model could serve the request right now; retry after the hinted delay."""

    status, code = 503, "model_unavailable"


class UpstreamTimeout(AppError):
    """The model did not answer in time."""

    status, code = 504, "upstream_timeout"


class ModelNotFound(AppError):
    """The configured model does not exist for this project and region."""

    status, code = 502, "model_not_found"


class TokenBudgetExceeded(AppError):
    """The caller's daily token budget is spent; it renews at the next UTC midnight."""

    status, code = 429, "token_budget_exceeded"


class CircuitOpen(AppError):
    """Every model of the chain is failing; calls fail fast until a probe succeeds."""

    status, code = 503, "circuit_open"


class Unavailable(AppError):
    """A dependency the request needs cannot be reached right now."""

    status, code = 503, "unavailable"


def failure_kind(error: AppError) -> str:
    """Whose failure an error is, for the error metric: ``service`` (the model or this service
    failed: 5xx), ``refused`` (a limit or an open breaker turned the call away on purpose) or
    ``client`` (the request was at fault). Only ``service`` counts as an error: the others must
    not fire HighErrorRate or fail a canary."""
    if isinstance(error, CircuitOpen | TokenBudgetExceeded | RateLimited):
        return "refused"
    return "service" if error.status >= 500 else "client"


def catalogue() -> list[type[AppError]]:
    """`AppError` and every subclass, by status then code: the complete table of error codes
    (the OpenAPI document lists it for app developers). Subclasses elsewhere (operations code
    refining `Conflict`, say) reuse these codes and are left out, whatever is imported."""
    found: list[type[AppError]] = []
    kinds: list[type[AppError]] = [AppError]
    while kinds:
        kind = kinds.pop()
        if kind.__module__ == __name__:
            found.append(kind)
        kinds.extend(kind.__subclasses__())
    return sorted(found, key=lambda kind: (kind.status, kind.code))


def from_code(code: str, message: str, retry_after: int | None = None) -> AppError:
    """The error of a code (as carried between instances), or a plain internal error."""
    for kind in catalogue():
        if kind.code == code:
            return kind(message, retry_after=retry_after)
    return AppError(message, retry_after=retry_after)

"""The one error family: what a use case refuses, and why, in words a person can act on.

Services and the domain raise these; they know nothing of HTTP. The API maps each class to a status
(`api.errors`), the console to a page message, the CLI to an exit code. Every error carries

- `code`: a stable machine string a client may switch on (``claim_not_found``, ``offer_expired``);
- `message`: written for a person;
- `details`: optional structured context (for validation errors: one entry per bad field);
- `retry_after`: seconds after which the same request may succeed (a request still in flight, a
  dependency down), or None.
"""

from __future__ import annotations

from typing import Any


class ClaimLaneError(Exception):
    """Base of every error the service answers on purpose."""

    code: str = "error"
    default_retry_after: int | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.retry_after = retry_after if retry_after is not None else self.default_retry_after


class BadRequest(ClaimLaneError):
    """The request itself is malformed (a header missing or unreadable)."""

    code = "bad_request"


class Unauthorized(ClaimLaneError):
    """No credentials, or credentials that name no enabled user."""

    code = "unauthorized"

    def __init__(self, message: str = "a valid API key is required", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class Forbidden(ClaimLaneError):
    """The user is known but their role may not do this."""

    code = "forbidden"


class NotFound(ClaimLaneError):
    """No such thing, or not one this user may see (the two are not told apart)."""

    code = "not_found"


class Conflict(ClaimLaneError):
    """The thing's current state does not allow this (yet, or any more)."""

    code = "conflict"


class PayloadTooLarge(ClaimLaneError):
    """An upload is over a size limit."""

    code = "payload_too_large"


class Unprocessable(ClaimLaneError):
    """Well-formed but invalid input; `details` names each problem."""

    code = "unprocessable"


class TooManyRequests(ClaimLaneError):
    """The caller has used up its allowance of requests for now; `retry_after` says when to return."""

    code = "rate_limited"


class ServiceUnavailable(ClaimLaneError):
    """A dependency (database, photo store) is down or the service is starting: retry later."""

    code = "service_unavailable"
    default_retry_after = 5

    def __init__(
        self, message: str = "the service is temporarily unavailable; retry later", **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)

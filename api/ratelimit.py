"""Rate limits at the edge, with the `limits` library: per API key on every authenticated request
(uploads stricter), per client address on failed authentications (after too many, the address is
locked out until the window moves on: 300 guessed keys in half a second is no longer possible) and
on console sign-ins. Answered 429 with `Retry-After`.

Windows are moving (exact: N requests in any period of the rule's length), not fixed or estimated,
so a limit means the same at any moment. Counters live in this process's memory by default (each web process counts on its own, so the
effective limit is the setting times the processes), or in Redis for one count across processes
(`CLAIMLANE_RATE_LIMIT_STORAGE_URL`). When that storage cannot be reached the request is let through
and a warning logged: a broken limiter must not take the service down with it.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Literal

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from claims.errors import TooManyRequests
from config.settings import Settings

logger = logging.getLogger(__name__)

Rule = Literal["per_key", "uploads", "auth_failures", "logins"]


class RateLimiter:
    """The configured limits of one process (see module doc)."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limits
        values: dict[Rule, str] = {
            "per_key": settings.rate_limit_per_key,
            "uploads": settings.rate_limit_uploads,
            "auth_failures": settings.rate_limit_auth_failures,
            "logins": settings.rate_limit_logins,
        }
        self.rules: dict[Rule, RateLimitItem] = {
            rule: parse(value) for rule, value in values.items() if value
        }
        self._limiter = MovingWindowRateLimiter(
            storage_from_string(settings.rate_limit_storage_url.get_secret_value())
        )

    def hit(self, rule: Rule, identity: str) -> None:
        """Count one request of `identity` against `rule`; TooManyRequests when it is over."""
        item = self._item(rule)
        if item is None:
            return
        try:
            allowed = self._limiter.hit(item, rule, identity)
        except Exception:  # the shared storage is down: let the request through (module doc)
            logger.warning("rate limit storage unavailable; %s not counted", rule, exc_info=True)
            return
        if not allowed:
            raise self._refusal(rule, item, identity)

    def check(self, rule: Rule, identity: str) -> None:
        """TooManyRequests if `identity` has already used up `rule`, without counting this request
        (a locked-out address is refused before its key is even looked at)."""
        item = self._item(rule)
        if item is None:
            return
        try:
            allowed = self._limiter.test(item, rule, identity)
        except Exception:
            logger.warning("rate limit storage unavailable; %s not checked", rule, exc_info=True)
            return
        if not allowed:
            raise self._refusal(rule, item, identity)

    def _item(self, rule: Rule) -> RateLimitItem | None:
        return self.rules.get(rule) if self.enabled else None

    def _refusal(self, rule: Rule, item: RateLimitItem, identity: str) -> TooManyRequests:
        try:
            reset = self._limiter.get_window_stats(item, rule, identity).reset_time
            retry_after = max(1, math.ceil(reset - time.time()))
        except Exception:
            retry_after = item.get_expiry()
        what = {
            "per_key": "requests with this API key",
            "uploads": "uploads with this API key",
            "auth_failures": "failed sign-ins from this address",
            "logins": "sign-in attempts from this address",
        }[rule]
        return TooManyRequests(
            f"too many {what} (limit {item}); retry after {retry_after} s",
            details={"limit": str(item), "rule": rule},
            retry_after=retry_after,
        )

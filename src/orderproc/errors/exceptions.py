"""The domain exception tree. Each error has a stable `code`; only the edge knows HTTP.

OrderProcError
├── ValidationFailed            invalid input (with a list of field errors)
├── AuthenticationFailed        InvalidCredentials, InvalidToken, TokenRevoked, InvalidTicket
├── PermissionDenied            AdminRequired, AccountDisabled, ClientBlocked
├── NotFound                    UserNotFound, AccountNotFound, AssetNotFound, ...
├── Conflict                    UsernameTaken, EmailTaken, ConcurrencyConflict, ...
├── BusinessRuleViolation       InsufficientFunds, DailyLimitExceeded, ...
├── TooManyRequests             RateLimited, LoginThrottled, ServerBusy, TooManyStreams
└── ServiceUnavailable          StoreUnavailable: StoreFull, StoreReadOnly, StoreTimeout
"""

from __future__ import annotations

from typing import Any, ClassVar


class OrderProcError(Exception):
    """Base of every error the platform raises on purpose."""

    code: ClassVar[str] = "ERROR"
    title: ClassVar[str] = "Error"
    default_detail: ClassVar[str] = "The request failed."

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.default_detail
        self.extra = extra
        super().__init__(self.detail)


class ValidationFailed(OrderProcError):
    code = "VALIDATION_ERROR"
    title = "Invalid request"
    default_detail = "The request is not valid."

    def __init__(self, detail: str | None = None, errors: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.errors = errors or []


class PayloadTooLarge(ValidationFailed):
    code = "PAYLOAD_TOO_LARGE"
    title = "Request body too large"
    default_detail = "The request body is larger than allowed."


class AuthenticationFailed(OrderProcError):
    code = "AUTHENTICATION_FAILED"
    title = "Authentication failed"
    default_detail = "Valid credentials are required."


class InvalidCredentials(AuthenticationFailed):
    code = "INVALID_CREDENTIALS"
    default_detail = "Incorrect username or password."


class InvalidToken(AuthenticationFailed):
    code = "INVALID_TOKEN"
    default_detail = "The access token is missing, malformed or expired."


class TokenRevoked(AuthenticationFailed):
    code = "TOKEN_REVOKED"
    default_detail = "The access token has been revoked."


class InvalidTicket(AuthenticationFailed):
    code = "INVALID_TICKET"
    default_detail = "The stream ticket is unknown, used or expired; ask for a new one."


class PermissionDenied(OrderProcError):
    code = "PERMISSION_DENIED"
    title = "Forbidden"
    default_detail = "You are not allowed to do this."


class AdminRequired(PermissionDenied):
    code = "ADMIN_REQUIRED"
    default_detail = "This action needs the admin role."


class AccountDisabled(PermissionDenied):
    code = "ACCOUNT_DISABLED"
    default_detail = "This account is disabled."


class ClientBlocked(PermissionDenied):
    code = "CLIENT_BLOCKED"
    default_detail = "Too many failed logins from this address; try again later."


class NotFound(OrderProcError):
    code = "NOT_FOUND"
    title = "Not found"
    default_detail = "The resource does not exist."


class UserNotFound(NotFound):
    code = "USER_NOT_FOUND"
    default_detail = "No such user."


class AccountNotFound(NotFound):
    code = "ACCOUNT_NOT_FOUND"
    default_detail = "No cash account for this user."


class AssetNotFound(NotFound):
    code = "ASSET_NOT_FOUND"
    default_detail = "No such asset."


class OrderNotFound(NotFound):
    code = "ORDER_NOT_FOUND"
    default_detail = "No such order."


class PositionNotFound(NotFound):
    code = "POSITION_NOT_FOUND"
    default_detail = "You hold no position in this asset."


class RouteNotFound(NotFound):
    code = "ROUTE_NOT_FOUND"
    default_detail = "No such route."


class MethodNotAllowed(OrderProcError):
    code = "METHOD_NOT_ALLOWED"
    title = "Method not allowed"
    default_detail = "This method is not allowed on this route."


class Conflict(OrderProcError):
    code = "CONFLICT"
    title = "Conflict"
    default_detail = "The request conflicts with the current state."


class UsernameTaken(Conflict):
    code = "USERNAME_TAKEN"
    default_detail = "This username is already registered."


class EmailTaken(Conflict):
    code = "EMAIL_TAKEN"
    default_detail = "This email is already registered."


class ConcurrencyConflict(Conflict):
    code = "CONCURRENT_UPDATE"
    default_detail = "The resource changed while the request ran; retry it."


class LockTimeout(ConcurrencyConflict):
    code = "LOCK_TIMEOUT"
    default_detail = "Another request for this account is still running; retry later."


class AssetExists(Conflict):
    code = "ASSET_EXISTS"
    default_detail = "An asset with this id exists already."


class ClientOrderIdReused(Conflict):
    code = "CLIENT_ORDER_ID_REUSED"
    default_detail = "This client_order_id was used for a different order."


class OrderNotOpen(Conflict):
    code = "ORDER_NOT_OPEN"
    default_detail = "Only open orders can be cancelled."


class LastAdmin(Conflict):
    code = "LAST_ADMIN"
    default_detail = "This would leave no active admin; promote another user to admin first."


class NotFeedLeader(Conflict):
    code = "NOT_FEED_LEADER"
    default_detail = (
        "This inventory process does not lead the price feed; the sandbox acts on the leader "
        "only: ask again (another replica may answer)."
    )


class BusinessRuleViolation(OrderProcError):
    code = "RULE_VIOLATION"
    title = "Request refused"
    default_detail = "The request breaks a business rule."
    # A refusal caused by the server's state of the moment (a stale price, an asset paused)
    # rather than by the request; a retry with the same Idempotency-Key may succeed later.
    transient: ClassVar[bool] = False


class InsufficientFunds(BusinessRuleViolation):
    code = "INSUFFICIENT_FUNDS"
    default_detail = "The available balance is too low."


class InsufficientHoldings(BusinessRuleViolation):
    code = "INSUFFICIENT_HOLDINGS"
    default_detail = "The available quantity is too low."


class DailyLimitExceeded(BusinessRuleViolation):
    code = "DAILY_LIMIT_EXCEEDED"
    default_detail = "This would exceed the daily limit."


class IdempotencyKeyReused(BusinessRuleViolation):
    code = "IDEMPOTENCY_KEY_REUSED"
    default_detail = "This Idempotency-Key was used with a different request."


class WeakPassword(BusinessRuleViolation):
    code = "WEAK_PASSWORD"
    default_detail = "The password is too weak."


class AssetInactive(BusinessRuleViolation):
    transient = True
    code = "ASSET_INACTIVE"
    default_detail = "This asset is not tradeable."


class StalePrice(BusinessRuleViolation):
    transient = True
    code = "STALE_PRICE"
    default_detail = "The price of this asset is too old to trade on."


class NotionalOutOfRange(BusinessRuleViolation):
    code = "NOTIONAL_OUT_OF_RANGE"
    default_detail = "The order value is outside the allowed range."


class PositionLimitExceeded(BusinessRuleViolation):
    code = "POSITION_LIMIT_EXCEEDED"
    default_detail = "This order would make the position larger than the platform can hold."


class OrderTypeNotSupported(BusinessRuleViolation):
    code = "ORDER_TYPE_NOT_SUPPORTED"
    default_detail = "This order type is not available."


class TooManyRequests(OrderProcError):
    code = "TOO_MANY_REQUESTS"
    title = "Too many requests"
    default_detail = "Slow down."

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class RateLimited(TooManyRequests):
    code = "RATE_LIMITED"
    default_detail = "Rate limit exceeded."


class LoginThrottled(TooManyRequests):
    code = "LOGIN_THROTTLED"
    default_detail = "Too many failed password attempts; try again later."


class ServerBusy(TooManyRequests):
    code = "SERVER_BUSY"
    default_detail = "The server is busy; retry shortly."


class TooManyStreams(TooManyRequests):
    code = "TOO_MANY_STREAMS"
    default_detail = "Too many streams are open; close one first."


RETRY_AFTER_SECONDS = 5


class ServiceUnavailable(OrderProcError):
    """A fault of the platform's own, not of the request: the same request may succeed later
    (`retry_after` seconds, sent as `Retry-After`)."""

    code = "SERVICE_UNAVAILABLE"
    title = "Service unavailable"
    default_detail = "A backing service is unavailable."

    def __init__(self, detail: str | None = None, *, retry_after: int = RETRY_AFTER_SECONDS):
        super().__init__(detail)
        self.retry_after = retry_after


class StoreUnavailable(ServiceUnavailable):
    """The store cannot do its work: unreachable, cannot open its file, an I/O error. Raised by
    the storage adapters, which map their drivers' errors to this family at their boundary.

    `reason` says what failed and where (a path, `host:port`, the driver's words, never
    credentials) for logs and the command line: it is `str(error)`. The answer to a client
    carries only the generic `detail`. A unit of work whose commit raises one of these was not
    applied, or (a lost connection or a time-out during COMMIT) its outcome is unknown: retry
    with the same Idempotency-Key, which makes the retry safe either way."""

    code = "STORE_UNAVAILABLE"
    default_detail = "The database is unavailable; retry later."

    def __init__(self, reason: str | None = None, *, retry_after: int = RETRY_AFTER_SECONDS):
        super().__init__(retry_after=retry_after)
        self.reason = reason or self.default_detail

    def __str__(self) -> str:
        return self.reason


class StoreFull(StoreUnavailable):
    code = "STORE_FULL"
    default_detail = "The database has no space left; retry later."


class StoreReadOnly(StoreUnavailable):
    code = "STORE_READ_ONLY"
    default_detail = "The database accepts no writes at the moment; retry later."


class StoreTimeout(StoreUnavailable):
    code = "STORE_TIMEOUT"
    default_detail = "The database did not answer in time; retry later."


def error_class_for(code: str) -> type[OrderProcError]:
    """The error class with this code (used to replay a stored rejection)."""
    return _BY_CODE.get(code, OrderProcError)


def _all_subclasses(cls: type[OrderProcError]) -> list[type[OrderProcError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_all_subclasses(sub))
    return found


_BY_CODE: dict[str, type[OrderProcError]] = {c.code: c for c in _all_subclasses(OrderProcError)}

"""HTTP routes of the users service: auth, profile, cash, and its admin routes."""

from __future__ import annotations

from typing import Annotated, Protocol, cast

from fastapi import APIRouter, Cookie, Depends, Form, Path, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime

from orderproc.common.fastroute import FastRoute
from orderproc.common.idempotency import fingerprint
from orderproc.common.money import format_money
from orderproc.common.paging import (
    ListPaging,
    cursor_paging,
    legacy_offset_paging,
    turn_before_rendering,
)
from orderproc.common.security.devices import DEVICE_COOKIE, set_device_cookie
from orderproc.common.security.tokens import IssuedToken
from orderproc.common.settings import Settings
from orderproc.common.storage.records import CashEntryKind, UserRecord
from orderproc.common.vocabulary import USERNAME_REGEX
from orderproc.common.web import (
    IDEMPOTENCY_OPENAPI,
    ClientIP,
    CurrentAdmin,
    CurrentUser,
    IdempotencyKey,
    check_time_range,
    model_response,
    request_is_https,
)
from orderproc.errors.problem import problem_responses
from orderproc.users import cash, service
from orderproc.users.domain import CashKind
from orderproc.users.schemas import (
    AdminUserRead,
    AdminUserUpdate,
    AuditEventRead,
    AuditPage,
    BalanceRead,
    CashReceiptRead,
    CashRequest,
    LoginRequest,
    MessageResponse,
    PasswordChange,
    PasswordChanged,
    ProfileUpdate,
    RegisterRequest,
    RegisterResponse,
    TokenResponse,
    TransactionRead,
    TransactionsPage,
    UserProfile,
    UsersPage,
)


class UsersRuntime(Protocol):
    settings: Settings

    @property
    def users(self) -> service.UsersDeps: ...
    @property
    def cash(self) -> cash.CashDeps: ...


async def _runtime(request: Request) -> UsersRuntime:
    return cast(UsersRuntime, request.app.state.runtime)


Runtime = Annotated[UsersRuntime, Depends(_runtime)]

auth = APIRouter(prefix="/auth", tags=["auth"])
balance = APIRouter(prefix="/balance", tags=["cash"], route_class=FastRoute)
admin = APIRouter(prefix="/admin", tags=["admin"])
AUTHED = problem_responses(401, 422, 429)
# The device cookie an earlier login on this client set (docs/security.md, "Login abuse").
# Left out of the OpenAPI document: generated clients would pass cookies per request, which
# httpx deprecates; the route descriptions say how to send it back.
DeviceCookie = Annotated[str | None, Cookie(alias=DEVICE_COOKIE, include_in_schema=False)]


@auth.post(
    "/register",
    operation_id="auth_register",
    status_code=201,
    response_model=RegisterResponse,
    responses=problem_responses(400, 409, 413, 422, 429),
)
async def register(body: RegisterRequest, rt: Runtime, ip: ClientIP) -> RegisterResponse:
    """Create a customer account with an empty USD balance."""
    reg = service.Registration(**body.model_dump())
    user = await service.register(reg, deps=rt.users, ip=ip)
    return RegisterResponse(message="User registered successfully", user=UserProfile.of(user))


async def _login(
    rt: UsersRuntime,
    request: Request,
    response: Response,
    credentials: tuple[str, str],
    ip: str | None,
    device: str | None,
) -> TokenResponse:
    """Throttled in `service.check_password`; a success sets a fresh device cookie."""
    username, password = credentials
    user, token = await service.login(
        username, password, deps=rt.users, ip=ip, device_cookie=device
    )
    set_device_cookie(
        response,
        rt.users.devices.issue(user.username),
        max_age=rt.users.devices.max_age_seconds,
        secure=request_is_https(request),
    )
    return _token_response(user, token, rt)


def _token_response(user: UserRecord, token: IssuedToken, rt: UsersRuntime) -> TokenResponse:
    return TokenResponse(
        access_token=token.token,
        expires_in=rt.settings.access_token_ttl_seconds,
        user=UserProfile.of(user),
    )


@auth.post(
    "/login",
    operation_id="auth_login",
    response_model=TokenResponse,
    responses=problem_responses(400, 401, 403, 413, 422, 429),
)
async def login(
    body: LoginRequest,
    rt: Runtime,
    ip: ClientIP,
    request: Request,
    response: Response,
    device: DeviceCookie = None,
) -> TokenResponse:
    """Exchange a username and password for a bearer token.

    Failed passwords are throttled: 429 with `Retry-After`, or 403 for an address blocked for
    failing with many usernames. A successful login also sets the `orderproc_device` cookie;
    while a username is under attack (more than 100 failures an hour) only clients sending it
    back (`Cookie: orderproc_device=…`) have their password checked."""
    return await _login(rt, request, response, (body.username, body.password), ip, device)


@auth.post(
    "/token",
    operation_id="auth_token",
    response_model=TokenResponse,
    responses=problem_responses(400, 401, 403, 413, 422, 429),
)
async def token(
    rt: Runtime,
    ip: ClientIP,
    username: Annotated[str, Form(min_length=1, max_length=64, examples=["alice"])],
    password: Annotated[
        str, Form(min_length=1, max_length=1024, examples=["correct horse battery staple"])
    ],
    request: Request,
    response: Response,
    device: DeviceCookie = None,
) -> TokenResponse:
    """The same login as an OAuth2 password form, for the interactive docs' Authorize button
    (throttled alike, and it sets the same `orderproc_device` cookie)."""
    return await _login(rt, request, response, (username, password), ip, device)


@auth.post("/logout", operation_id="auth_logout", response_model=MessageResponse, responses=AUTHED)
async def logout(principal: CurrentUser, rt: Runtime, ip: ClientIP) -> MessageResponse:
    """Revoke the presented token for good."""
    await service.logout(
        user_id=principal.user_id,
        jti=principal.jti,
        expires_at=principal.expires_at,
        deps=rt.users,
        ip=ip,
    )
    return MessageResponse(message="Logged out")


@auth.get("/profile", operation_id="auth_get_profile", response_model=UserProfile, responses=AUTHED)
async def get_profile(principal: CurrentUser, rt: Runtime) -> UserProfile:
    return UserProfile.of(await service.get_user(principal.user_id, store=rt.users.store))


@auth.put(
    "/profile",
    operation_id="auth_update_profile",
    response_model=UserProfile,
    responses=problem_responses(400, 401, 409, 413, 422, 429),
)
async def update_profile(body: ProfileUpdate, principal: CurrentUser, rt: Runtime) -> UserProfile:
    """Change only the fields sent; `null` clears phone or date of birth."""
    changes = service.ProfileChanges(**body.model_dump())
    fields = set(body.model_fields_set)
    for required in ("email", "first_name", "last_name"):
        if required in fields and getattr(body, required) is None:
            fields.discard(required)
    user = await service.update_profile(
        principal.user_id, changes, deps=rt.users, fields_set=fields
    )
    return UserProfile.of(user)


@auth.post(
    "/password",
    operation_id="auth_change_password",
    response_model=PasswordChanged,
    responses=problem_responses(400, 401, 403, 413, 422, 429),
)
async def change_password(
    body: PasswordChange,
    principal: CurrentUser,
    rt: Runtime,
    ip: ClientIP,
    device: DeviceCookie = None,
) -> PasswordChanged:
    """Change the password. Every token issued before now stops working; use the new one.
    A wrong current password counts as a failed login (429 with `Retry-After` after too many;
    send `Cookie: orderproc_device=…` as for a login)."""
    issued = await service.change_password(
        principal.user_id,
        body.current_password,
        body.new_password,
        deps=rt.users,
        ip=ip,
        device_cookie=device,
    )
    return PasswordChanged(
        message="Password changed; other sessions were signed out",
        access_token=issued.token,
        expires_in=rt.settings.access_token_ttl_seconds,
    )


@balance.get("", operation_id="balance_get", response_model=BalanceRead, responses=AUTHED)
async def get_balance(principal: CurrentUser, rt: Runtime) -> Response:
    """Cash balance, and what is available after open orders' reservations."""
    account = await cash.get_account(principal.user_id, store=rt.cash.store)
    return model_response(BalanceRead.of(account))


async def _move(
    kind: CashKind,
    body: CashRequest,
    principal: CurrentUser,
    rt: UsersRuntime,
    key: str | None,
) -> Response:
    cmd = cash.CashCommand(
        user_id=principal.user_id,
        kind=kind,
        amount=body.amount,
        idempotency_key=key,
        fingerprint=fingerprint("POST", f"/balance/{kind}", {"amount": format_money(body.amount)}),
    )
    receipt = await cash.move_cash(cmd, deps=rt.cash)
    return model_response(CashReceiptRead(**receipt.to_payload()), status_code=201)


@balance.post(
    "/deposit",
    operation_id="balance_deposit",
    openapi_extra=IDEMPOTENCY_OPENAPI,
    status_code=201,
    response_model=CashReceiptRead,
    responses=problem_responses(400, 401, 409, 413, 422, 429),
)
async def deposit(
    body: CashRequest, principal: CurrentUser, rt: Runtime, key: IdempotencyKey
) -> Response:
    """Add cash (daily limit applies). A retry with the same Idempotency-Key replays."""
    return await _move("deposit", body, principal, rt, key)


@balance.post(
    "/withdraw",
    operation_id="balance_withdraw",
    openapi_extra=IDEMPOTENCY_OPENAPI,
    status_code=201,
    response_model=CashReceiptRead,
    responses=problem_responses(400, 401, 409, 413, 422, 429),
)
async def withdraw(
    body: CashRequest, principal: CurrentUser, rt: Runtime, key: IdempotencyKey
) -> Response:
    """Take cash out, up to the available balance (daily limit applies)."""
    return await _move("withdraw", body, principal, rt, key)


@balance.get(
    "/transactions",
    operation_id="balance_list_transactions",
    response_model=TransactionsPage,
    responses=AUTHED,
)
async def transactions(
    principal: CurrentUser,
    rt: Runtime,
    paging: Annotated[ListPaging, Depends(legacy_offset_paging("balance_list_transactions"))],
    transaction_type: CashEntryKind | None = None,
    start: Annotated[AwareDatetime | None, Query(description="Inclusive, ISO-8601")] = None,
    end: Annotated[AwareDatetime | None, Query(description="Exclusive, ISO-8601")] = None,
) -> TransactionsPage:
    """The cash ledger, newest first. Pages by `cursor` (or, legacy, `offset`); the rows are
    also under `transactions`, the name the original platform's clients read."""
    check_time_range(start, end)
    at = paging.keyset(user=principal.user_id)
    page = await cash.list_cash_entries(
        principal.user_id,
        store=rt.cash.store,
        kind=transaction_type,
        start=start,
        end=end,
        limit=at.limit,
        after=at.after,
        offset=at.offset,
    )
    await turn_before_rendering()
    rows = [TransactionRead.of(e) for e in page.items]
    return TransactionsPage(data=rows, transactions=rows, **at.fields(page))


@admin.get(
    "/users",
    operation_id="admin_list_users",
    response_model=UsersPage,
    responses=problem_responses(401, 403, 422, 429),
)
async def admin_list_users(
    admin_user: CurrentAdmin,
    rt: Runtime,
    paging: Annotated[ListPaging, Depends(cursor_paging("admin_list_users"))],
) -> UsersPage:
    """Every user, newest first; pages by `cursor`."""
    at = paging.keyset(user=admin_user.user_id)
    page = await service.list_users(store=rt.users.store, limit=at.limit, after=at.after)
    await turn_before_rendering()
    return UsersPage(data=[AdminUserRead.of(u) for u in page.items], **at.fields(page))


@admin.patch(
    "/users/{username}",
    operation_id="admin_update_user",
    response_model=AdminUserRead,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429),
)
async def admin_update_user(
    username: Annotated[str, Path(pattern=USERNAME_REGEX)],
    body: AdminUserUpdate,
    admin_user: CurrentAdmin,
    rt: Runtime,
    ip: ClientIP,
) -> AdminUserRead:
    """Change a user's role or disable them; both sign the user out everywhere. Taking away
    the last active admin (yourself included) is 409 `LAST_ADMIN`."""
    user = await service.admin_update_user(
        username,
        role=body.role,
        is_active=body.is_active,
        actor_id=admin_user.user_id,
        deps=rt.users,
        ip=ip,
    )
    return AdminUserRead.of(user)


@admin.get(
    "/audit",
    operation_id="admin_list_audit_events",
    response_model=AuditPage,
    responses=problem_responses(401, 403, 422, 429),
)
async def admin_audit(
    admin_user: CurrentAdmin,
    rt: Runtime,
    paging: Annotated[ListPaging, Depends(cursor_paging("admin_list_audit_events"))],
    username: Annotated[str | None, Query(max_length=30)] = None,
    event_type: Annotated[str | None, Query(max_length=64)] = None,
    start: AwareDatetime | None = None,
    end: AwareDatetime | None = None,
) -> AuditPage:
    """Security events, newest first; pages by `cursor`. With both `username` and
    `event_type`, a page looks at no more than 1,000 of the user's events, so it can be short
    while `has_more` is true."""
    check_time_range(start, end)
    at = paging.keyset(user=admin_user.user_id)
    user_id = None
    if username:
        async with rt.users.store.unit_of_work() as uow:
            user = await uow.users.get_by_username(username.lower())
        user_id = user.user_id if user else "-"
    page = await service.list_audit(
        store=rt.users.store,
        user_id=user_id,
        event_type=event_type,
        start=start,
        end=end,
        limit=at.limit,
        after=at.after,
    )
    await turn_before_rendering()
    return AuditPage(data=[AuditEventRead.of(e) for e in page.items], **at.fields(page))


routers = (auth, balance, admin)

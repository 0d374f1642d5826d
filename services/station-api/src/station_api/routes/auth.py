"""/api/auth: login (OAuth2 password flow), refresh, logout, setup, me, password change."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordRequestForm

from servicekit.auth.dependencies import (
    ACCESS_COOKIE,
    CSRF_COOKIE,
    enforce_csrf,
    oauth2_scheme,
    require,
)
from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal, TokenError, TokenVerifier
from servicekit.errors import COMMON_RESPONSES, Unauthorized, error, unprocessable
from station_api.routes.common import PUBLIC, client_addr, sessions
from station_api.schemas import PasswordChangeIn, RefreshIn, SetupIn, TokenOut, UserOut
from station_api.services.accounts import UserView
from station_api.services.sessions import TokenBundle

router = APIRouter(prefix="/api/auth", tags=["auth"], responses={422: unprocessable()})

REFRESH_COOKIE = "eas_refresh"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
REFRESH_COOKIE_PATH = "/api/auth"


def _secure(request: Request) -> bool:
    configured: bool | None = request.app.state.cookie_secure
    return request.url.scheme == "https" if configured is None else configured


def set_session_cookies(request: Request, response: Response, bundle: TokenBundle) -> None:
    secure = _secure(request)
    response.set_cookie(
        ACCESS_COOKIE,
        bundle.access_token,
        max_age=bundle.expires_in,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    response.set_cookie(
        REFRESH_COOKIE,
        bundle.refresh_token,
        max_age=bundle.refresh_expires_in,
        path=REFRESH_COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    # Readable by the page's script on purpose: it echoes the value in X-CSRF-Token.
    response.set_cookie(
        CSRF_COOKIE,
        bundle.csrf_token,
        max_age=bundle.refresh_expires_in,
        path="/",
        httponly=False,
        samesite="strict",
        secure=secure,
    )


def clear_session_cookies(request: Request, response: Response) -> None:
    secure = _secure(request)
    for name, path, http_only in (
        (ACCESS_COOKIE, "/", True),
        (REFRESH_COOKIE, REFRESH_COOKIE_PATH, True),
        (CSRF_COOKIE, "/", False),
    ):
        response.delete_cookie(
            name, path=path, httponly=http_only, samesite="strict", secure=secure
        )


def _token_out(bundle: TokenBundle) -> TokenOut:
    return TokenOut(
        access_token=bundle.access_token,
        expires_in=bundle.expires_in,
        refresh_token=bundle.refresh_token,
        refresh_expires_in=bundle.refresh_expires_in,
        csrf_token=bundle.csrf_token,
        username=bundle.username,
        role=bundle.role,
    )


def user_out(user: UserView) -> UserOut:
    return UserOut(
        username=user.username,
        role=user.role,
        disabled=user.disabled,
        created_at=user.created_at,
        created_by=user.created_by,
        updated_at=user.updated_at,
        password_changed_at=user.password_changed_at,
        last_login_at=user.last_login_at,
    )


def _refresh_token(request: Request, body: RefreshIn | None) -> str | None:
    """The refresh token from the body, else from the cookie (then CSRF applies)."""
    if body is not None and body.refresh_token:
        return body.refresh_token
    cookie = request.cookies.get(REFRESH_COOKIE)
    if cookie:
        enforce_csrf(request)
    return cookie


@router.post(
    "/token",
    openapi_extra=PUBLIC,
    response_model=TokenOut,
    summary="Log in (OAuth2 password flow): access and refresh tokens, session cookies",
    responses={
        401: error("wrong user name or password"),
        429: error("too many failures; see Retry-After"),
        503: error("no signing key configured"),
    },
)
async def login(
    request: Request, response: Response, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> TokenOut:
    if _CONTROL.search(form.username):
        # No user name holds one, and the failed attempt could not even be audited (NUL).
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "username"),
                    "msg": "must not contain control characters (such as NUL)",
                    "type": "value_error",
                }
            ]
        )
    bundle = await sessions(request).login(form.username, form.password, client_addr(request))
    set_session_cookies(request, response, bundle)
    return _token_out(bundle)


@router.post(
    "/refresh",
    openapi_extra=PUBLIC,
    response_model=TokenOut,
    summary="Trade a refresh token (body or cookie) for new tokens; the old one is spent",
    responses={401: error("unknown, spent or expired token")},
)
async def refresh(request: Request, response: Response, body: RefreshIn | None = None) -> TokenOut:
    token = _refresh_token(request, body)
    if not token:
        raise Unauthorized("no refresh token: send it in the body or the eas_refresh cookie")
    bundle = await sessions(request).refresh(token, client_addr(request))
    set_session_cookies(request, response, bundle)
    return _token_out(bundle)


@router.post(
    "/logout",
    openapi_extra=PUBLIC,
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End the session: revoke its refresh tokens and clear the cookies",
)
async def logout(
    request: Request,
    bearer: Annotated[str | None, Depends(oauth2_scheme)],
    body: RefreshIn | None = None,
) -> Response:
    token = _refresh_token(request, body)
    principal: Principal | None = None
    raw = bearer or request.cookies.get(ACCESS_COOKIE)
    if not bearer and ACCESS_COOKIE in request.cookies:
        enforce_csrf(request)
    verifier: TokenVerifier | None = request.app.state.verifier
    if raw and verifier is not None:
        try:
            principal = verifier.verify(raw)
        except TokenError:
            principal = None  # an expired access token must not stop a logout
    await sessions(request).logout(token, principal, client_addr(request))
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_session_cookies(request, response)
    return response


@router.post(
    "/setup",
    openapi_extra=PUBLIC,
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    summary="Create the first admin with the one-time setup token printed at first start",
    responses={403: error("wrong or used token, or users exist")},
)
async def setup(request: Request, body: SetupIn) -> UserOut:
    user = await sessions(request).setup(
        body.setup_token, body.username, body.password, client_addr(request)
    )
    return user_out(user)


@router.get(
    "/me",
    response_model=UserOut,
    summary="The signed-in user",
    responses={
        **COMMON_RESPONSES,
        404: error("the token's user no longer exists"),
    },
)
async def me(
    request: Request,
    principal: Annotated[Principal, Depends(require(Permission.ACCOUNT_SELF))],
) -> UserOut:
    return user_out(await sessions(request).me(principal))


@router.post(
    "/password",
    response_model=TokenOut,
    summary="Change one's own password (ends every other session; returns new tokens)",
    responses=COMMON_RESPONSES,
)
async def change_password(
    request: Request,
    response: Response,
    body: PasswordChangeIn,
    principal: Annotated[Principal, Depends(require(Permission.ACCOUNT_SELF))],
) -> TokenOut:
    bundle = await sessions(request).change_password(
        principal, body.current_password, body.new_password, client_addr(request)
    )
    set_session_cookies(request, response, bundle)
    return _token_out(bundle)

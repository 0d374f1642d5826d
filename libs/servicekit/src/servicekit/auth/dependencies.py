"""FastAPI dependencies that enforce the permission table on every route.

Browsers authenticate with the HttpOnly ``eas_access`` cookie; a cookie is sent by the browser
on its own, so every unsafe request (POST/PUT/PATCH/DELETE) authenticated by that cookie must
also prove it was made by the station's own page: it echoes the readable ``eas_csrf`` cookie in
the ``X-CSRF-Token`` header (double submit). A page on another origin can neither read the
cookie nor set the header. When the access token carries a ``csrf`` claim (station-api binds
them), the header must also hash to that claim. Requests with an ``Authorization: Bearer``
header are exempt: a browser never adds that header by itself.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from fastapi.security.utils import get_authorization_scheme_param

from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal, TokenError, TokenVerifier, csrf_hash

ACCESS_COOKIE = "eas_access"
CSRF_COOKIE = "eas_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# tokenUrl points at station-api's login; /docs shows the Authorize button on every service.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def csrf_error(request: Request, bound_hash: str | None = None) -> str | None:
    """Why this cookie-authenticated request fails the CSRF check, or None if it passes."""
    if request.method.upper() in SAFE_METHODS:
        return None
    header = request.headers.get(CSRF_HEADER, "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not header or not cookie:
        return f"CSRF check failed: send the {CSRF_COOKIE} cookie's value in {CSRF_HEADER}"
    if not hmac.compare_digest(header.encode(), cookie.encode()):
        return f"CSRF check failed: {CSRF_HEADER} does not match the {CSRF_COOKIE} cookie"
    if bound_hash is not None and not hmac.compare_digest(csrf_hash(header), bound_hash):
        return "CSRF check failed: the token does not belong to this session"
    return None


def enforce_csrf(request: Request, bound_hash: str | None = None) -> None:
    """Raise 403 unless the request passes the double-submit check (unsafe methods only)."""
    reason = csrf_error(request, bound_hash)
    if reason is not None:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=reason)


def bearer_token(request: Request) -> str | None:
    """The ``Authorization: Bearer`` token, read exactly as ``oauth2_scheme`` reads it."""
    authorization = request.headers.get("Authorization")
    scheme, param = get_authorization_scheme_param(authorization)
    if not authorization or scheme.lower() != "bearer":
        return None
    return param


def authorize(request: Request, token: str | None, permission: Permission) -> Principal:
    """The caller's principal if it holds ``permission``; raises the 401/403 otherwise.

    Shared by :func:`require` and by layers that answer before routing (the read cache), so
    both enforce the same rules.
    """
    verifier: TokenVerifier | None = getattr(request.app.state, "verifier", None)
    anonymous_read: bool = getattr(request.app.state, "anonymous_read", False)
    from_cookie = token is None and ACCESS_COOKIE in request.cookies
    raw = token or request.cookies.get(ACCESS_COOKIE)
    if raw is None:
        anon = Principal.anonymous_reader()
        if anonymous_read and permission in anon.permissions:
            return anon
        raise _unauthorized("authentication required: send a Bearer token")
    if verifier is None:
        raise _unauthorized("this service has no public key configured to verify tokens")
    try:
        principal = verifier.verify(raw)
    except TokenError as exc:
        raise _unauthorized(str(exc)) from exc
    if from_cookie:
        enforce_csrf(request, principal.csrf_hash)
    if permission not in principal.permissions:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail=f"role {principal.role} lacks permission {permission.value}",
        )
    request.state.principal = principal
    return principal


def require(permission: Permission) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """Dependency: the caller's principal, if it holds ``permission``; 401/403 otherwise."""

    async def dependency(request: Request, token: str | None = Depends(oauth2_scheme)) -> Principal:
        return authorize(request, token, permission)

    dependency.__name__ = f"require_{permission.value.replace(':', '_')}"
    # Declared on the dependency so tools and tests can read every route's permission.
    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency


def permission_of(call: object) -> Permission | None:
    """The permission a dependency made by :func:`require` enforces, else None."""
    permission = getattr(call, "permission", None)
    return permission if isinstance(permission, Permission) else None


def route_permissions(dependant: Any) -> list[Permission]:
    """Every permission a route's dependency tree (a FastAPI ``Dependant``) enforces."""
    found: list[Permission] = []
    stack = list(dependant.dependencies)
    while stack:
        dep = stack.pop()
        permission = permission_of(dep.call)
        if permission is not None and permission not in found:
            found.append(permission)
        stack.extend(dep.dependencies)
    return found

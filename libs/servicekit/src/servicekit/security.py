"""FastAPI dependencies that enforce the permission table on every route."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer

from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal, TokenError, TokenVerifier

ACCESS_COOKIE = "eas_access"

# tokenUrl points at station-api's login; /docs shows the Authorize button on every service.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def require(permission: Permission) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """Dependency: the caller's principal, if it holds ``permission``; 401/403 otherwise."""

    async def dependency(request: Request, token: str | None = Depends(oauth2_scheme)) -> Principal:
        verifier: TokenVerifier | None = getattr(request.app.state, "verifier", None)
        anonymous_read: bool = getattr(request.app.state, "anonymous_read", False)
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
        if permission not in principal.permissions:
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"role {principal.role} lacks permission {permission.value}",
            )
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{permission.value.replace(':', '_')}"
    return dependency

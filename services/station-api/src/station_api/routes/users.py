"""/api/users: user administration (admins). No answer ever carries a password hash."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, status

from eas_schemas.text import OneLine
from servicekit.auth.dependencies import require
from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal
from servicekit.errors import COMMON_RESPONSES, error
from station_api.routes.auth import user_out
from station_api.routes.common import client_addr, users
from station_api.schemas import (
    UserCreateIn,
    UserOut,
    UserUpdateIn,
)

router = APIRouter(prefix="/api/users", tags=["users"], responses=COMMON_RESPONSES)

Admin = Annotated[Principal, Depends(require(Permission.USERS_ADMIN))]
Username = Annotated[OneLine, Path(min_length=1, max_length=64)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: error("no such user")}
LAST_ADMIN: dict[int | str, dict[str, Any]] = {409: error("would leave the station without admin")}


@router.get("", response_model=list[UserOut], summary="Every user")
async def list_users(request: Request, _: Admin) -> list[UserOut]:
    return [user_out(u) for u in await users(request).list_users()]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    summary="Create a user (never with a role above the creator's)",
    responses={409: error("the user name is taken")},
)
async def create_user(request: Request, body: UserCreateIn, principal: Admin) -> UserOut:
    user = await users(request).create_user(
        principal, body.username, body.password, body.role, client_addr(request)
    )
    return user_out(user)


@router.get("/{username}", response_model=UserOut, summary="One user", responses=NOT_FOUND)
async def get_user(request: Request, username: Username, _: Admin) -> UserOut:
    return user_out(await users(request).get_user(username))


@router.patch(
    "/{username}",
    response_model=UserOut,
    summary="Change role, disable/enable, or reset the password (ends the user's sessions)",
    responses={**NOT_FOUND, **LAST_ADMIN},
)
async def update_user(
    request: Request, username: Username, body: UserUpdateIn, principal: Admin
) -> UserOut:
    user = await users(request).update_user(
        principal,
        username,
        client_addr(request),
        role=body.role,
        disabled=body.disabled,
        password=body.password,
    )
    return user_out(user)


@router.delete(
    "/{username}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a user and its sessions",
    responses={**NOT_FOUND, **LAST_ADMIN},
)
async def delete_user(request: Request, username: Username, principal: Admin) -> Response:
    await users(request).delete_user(principal, username, client_addr(request))
    return Response(status_code=status.HTTP_204_NO_CONTENT)

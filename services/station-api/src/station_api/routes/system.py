"""/api/system: the fleet of service instances, this host's resources, dependency health."""

from __future__ import annotations

import asyncio
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from servicekit.auth.dependencies import require
from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal
from servicekit.errors import COMMON_RESPONSES
from station_api.routes.common import fleet
from station_api.schemas import (
    DependenciesOut,
    DependencyOut,
    FleetOut,
    HostOut,
    InstanceOut,
)
from station_api.services.host import host_snapshot, probe_latency

router = APIRouter(prefix="/api/system", tags=["system"], responses=COMMON_RESPONSES)

Reader = Annotated[Principal, Depends(require(Permission.SYSTEM_READ))]


@router.get("/fleet", response_model=FleetOut, summary="Every service instance, from heartbeats")
async def get_fleet(request: Request, _: Reader) -> FleetOut:
    monitor = fleet(request)
    instances = [InstanceOut.model_validate(i) for i in monitor.snapshot()]
    return FleetOut(
        rebuilt=monitor.rebuilt.is_set(),
        total=len(instances),
        up=sum(1 for i in instances if i.status == "up"),
        down=sum(1 for i in instances if i.status == "down"),
        not_ready=sum(1 for i in instances if i.status == "not-ready"),
        instances=instances,
    )


@router.get("/host", response_model=HostOut, summary="CPU, memory, disk, load, uptime")
async def get_host(request: Request, _: Reader) -> HostOut:
    paths: list[str] = request.app.state.host_disk_paths
    return HostOut.model_validate(await asyncio.to_thread(host_snapshot, paths))


@router.get(
    "/dependencies", response_model=DependenciesOut, summary="Database and Redis, with latency"
)
async def get_dependencies(request: Request, _: Reader) -> DependenciesOut:
    engine = cast(AsyncEngine, request.app.state.engine)

    async def database() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    db, redis = await asyncio.gather(
        probe_latency("database", database),
        probe_latency("redis", request.app.state.redis.ping),
    )
    return DependenciesOut(
        database=DependencyOut.model_validate(db), redis=DependencyOut.model_validate(redis)
    )

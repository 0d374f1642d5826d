"""Build any HTTP service of the station for a test: migrated database, settings, tokens.

Services are found through their manifests (``servicekit.manifest``), so eas_testkit depends
on servicekit only and knows no service by name.
Used by the cross-service tests (route permissions, OpenAPI fuzzing)::

    app = await build_app("alerts-api", resources, anonymous_read=True)
    token = resources.token(Role.VIEWER)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from servicekit.auth.permissions import Role
from servicekit.auth.tokens import TokenSigner, generate_keypair
from servicekit.manifest import ServiceManifest, by_name, installed


def http_services() -> tuple[str, ...]:
    """The installed services with an HTTP API beyond health (from their manifests)."""
    return tuple(m.name for m in installed() if m.http_api)


@dataclass
class Resources:
    """What a service needs from the test: its database, Redis, a key pair and a directory."""

    database_url: str
    redis_url: str
    bus_namespace: str
    tmp_path: Path
    keypair: tuple[str, str] = field(default_factory=generate_keypair)

    @property
    def signer(self) -> TokenSigner:
        return TokenSigner(self.keypair[0])

    @property
    def private_key_pem(self) -> str:
        return self.keypair[0]

    @property
    def public_key_pem(self) -> str:
        return self.keypair[1]

    def token(self, role: Role, ttl_s: int = 600, now: float | None = None) -> str:
        return self.signer.mint(f"test-{role.value}", role, ttl_s=ttl_s, now=now)


def _settings_for(
    manifest: ServiceManifest, resources: Resources, overrides: dict[str, Any]
) -> Any:
    common: dict[str, Any] = {
        "database_url": resources.database_url,
        "redis_url": resources.redis_url,
        "bus_namespace": resources.bus_namespace,
        "instance": "test-1",
        "heartbeat_interval_s": 0.5,
    }
    specific = manifest.test_settings(resources)
    return manifest.settings(**{**common, **specific, **overrides})


async def migrate(name: str, database_url: str) -> None:
    upgrade = by_name(name).upgrade_url
    if upgrade is not None:
        await upgrade(database_url)


async def build_app(name: str, resources: Resources, **overrides: Any) -> FastAPI:
    """Migrate the service's schema and create its app (the lifespan is not started)."""
    manifest = by_name(name)
    await migrate(name, resources.database_url)
    app = manifest.create_app(_settings_for(manifest, resources, overrides))
    if not isinstance(app, FastAPI):
        raise TypeError(f"{name} has no FastAPI app (its create_app gives {type(app).__name__})")
    return app


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute of an app or router, through included routers (FastAPI wraps them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)
        elif hasattr(route, "routes"):
            yield from api_routes(route.routes)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]
    route: APIRoute

    @property
    def tags(self) -> list[str]:
        return list(self.spec.get("tags", []))

    @property
    def public(self) -> bool:
        return self.spec.get("x-public") is True

    def url(self) -> str:
        """The path with every path parameter filled with a plausible value."""
        params = {p["name"]: p for p in self.spec.get("parameters", []) if p["in"] == "path"}

        def fill(match: re.Match[str]) -> str:
            param = params.get(match.group(1))
            assert param is not None, f"{self.method} {self.path}: {match.group(1)} undeclared"
            return plausible(param.get("schema", {}))

        return re.sub(r"\{(\w+)\}", fill, self.path)


def plausible(schema: dict[str, Any]) -> str:
    """A value that passes a path parameter's schema (so the request reaches the route)."""
    if schema.get("type") == "integer":
        return str(max(1, int(schema.get("minimum", 1))))
    pattern = schema.get("pattern")
    candidates = ["someone", "0" * 32, "x", "1"]
    for candidate in candidates:
        fits = pattern is None or re.search(pattern, candidate) is not None
        if fits and len(candidate) >= int(schema.get("minLength", 0)):
            return candidate
    raise AssertionError(f"no plausible value for a path parameter with schema {schema}")


def operations(app: FastAPI) -> list[Operation]:
    """Every (method, path) of the app's OpenAPI document, with its route."""
    by_key = {(m, r.path): r for r in api_routes(app.routes) for m in r.methods or ()}
    found: list[Operation] = []
    for path, item in app.openapi()["paths"].items():
        for method, spec in item.items():
            if method.upper() not in {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}:
                continue
            route = by_key.get((method.upper(), path))
            assert route is not None, f"{method.upper()} {path} is in OpenAPI but not routed"
            found.append(Operation(method.upper(), path, spec, route))
    return found

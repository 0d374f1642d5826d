"""One descriptor per service, read by everything that runs or tests the services.

Each service exports ``MANIFEST`` from ``<package>/manifest.py`` and registers it under the
``eas_station.services`` entry point group in its ``pyproject.toml``. The one-port gateway,
``eas_testkit`` (route-permission and fuzz tests over every HTTP service), the AsyncAPI script,
the scaled deployment's checks and each service's own command line all read the same
manifests, so adding a service is one file and one pyproject line, and nothing keeps a list.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from starlette.types import ASGIApp

from servicekit.settings import ServiceSettings

ENTRY_POINT_GROUP = "eas_station.services"


class TestResources(Protocol):
    """What a test hands a service (``eas_testkit.services.Resources`` is one)."""

    database_url: str
    redis_url: str
    bus_namespace: str
    tmp_path: Path

    @property
    def private_key_pem(self) -> str: ...

    @property
    def public_key_pem(self) -> str: ...


@dataclass(frozen=True)
class ServiceManifest:
    name: str
    summary: str
    # Where the service answers in the single origin (gateway, nginx), longest match wins.
    prefixes: tuple[str, ...]
    settings: type[ServiceSettings]
    create_app: Callable[..., ASGIApp]
    default_port: int
    upgrade_url: Callable[[str], Coroutine[Any, Any, None]] | None = None
    asyncapi_document: Callable[[], dict[str, Any]] | None = None
    # Routes beyond health: what the route-permission and fuzz tests walk.
    http_api: bool = True
    # Why a second instance must not run (it owns hardware or inputs), or None: replicable.
    single_instance: str | None = None
    # Fast intervals and test keys for a service built in a test.
    test_settings: Callable[[TestResources], dict[str, Any]] = field(default=lambda resources: {})
    # Order in which the gateway enters the lifespans (lower first).
    order: int = 100


class ManifestError(RuntimeError):
    """A registered service could not be loaded."""


def installed() -> list[ServiceManifest]:
    """Every installed service's manifest, in start order. A registered service whose package
    fails to import is an error, never a silently missing service."""
    manifests: list[ServiceManifest] = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            manifest = point.load()
        except Exception as exc:
            raise ManifestError(f"{point.name}: loading {point.value} failed: {exc!r}") from exc
        if not isinstance(manifest, ServiceManifest):
            raise ManifestError(f"{point.name}: {point.value} is not a ServiceManifest")
        if manifest.name != point.name:
            raise ManifestError(f"{point.value} names itself {manifest.name!r}, not {point.name!r}")
        manifests.append(manifest)
    return sorted(manifests, key=lambda m: (m.order, m.name))


def by_name(name: str) -> ServiceManifest:
    for manifest in installed():
        if manifest.name == name:
            return manifest
    raise ManifestError(f"no installed service named {name!r}")

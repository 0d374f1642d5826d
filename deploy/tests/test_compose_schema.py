"""deploy/compose.yml against the Compose Specification's JSON schema, offline.

The schema is the one check-jsonschema vendors (``vendor.compose-spec``, the compose-spec
project's own schema, Apache-2.0), so no network is needed. The schema checks the shape of
each key; what it cannot see (a ``depends_on`` naming no service, a secret or volume used but
never declared) is checked here too, because ``docker compose config`` is not on the machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1]
COMPOSE = DEPLOY / "compose.yml"


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_file_matches_the_compose_specification() -> None:
    result = _check(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # A misspelt key is the mistake a YAML syntax check lets through.
        (lambda c: c["services"]["alerts-api"].update(commnd=["alerts-api"]), "commnd"),
        (lambda c: c["services"]["redis"].update(restart=["always"]), "restart"),
        (lambda c: c["services"]["alerts-api"]["deploy"].update(replicas={"n": 2}), "replicas"),
    ],
    ids=["unknown-key", "wrong-type", "wrong-nested-type"],
)
def test_the_schema_check_rejects_a_broken_compose_file(
    tmp_path: Path, change: Any, expected: str
) -> None:
    broken = _compose()
    change(broken)
    path = tmp_path / "compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = _check(path)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr


def test_every_reference_in_compose_names_something_declared() -> None:
    compose = _compose()
    services = compose["services"]
    secrets = set(compose.get("secrets", {}))
    volumes = set(compose.get("volumes", {}))
    for name, service in services.items():
        depends = service.get("depends_on", [])
        for target in depends if isinstance(depends, list) else depends.keys():
            assert target in services, f"{name} depends on unknown service {target}"
        for secret in service.get("secrets", []):
            assert secret in secrets, f"{name} uses undeclared secret {secret}"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name} uses undeclared volume {source}"
    for name, secret in compose.get("secrets", {}).items():
        assert "file" in secret, f"secret {name} has no file"


def test_every_interpolated_variable_has_a_default_or_a_message() -> None:
    # ``${X}`` alone turns into an empty string with a warning; the station wants either a
    # stated default (``${X:-}``) or a refusal to start naming X (``${X:?why}``).
    text = COMPOSE.read_text()
    bare = re.findall(r"(?<!\$)\$\{[A-Z0-9_]+\}", text)
    assert bare == []

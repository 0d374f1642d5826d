"""Every service's published AsyncAPI document is what its code generates."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("asyncapi_script", ROOT / "scripts" / "asyncapi.py")
assert spec and spec.loader
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


@pytest.mark.parametrize("service", sorted(script.documents()))
def test_checked_in_document_matches_the_code(service: str) -> None:
    path = ROOT / "docs" / "asyncapi" / f"{service}.json"
    generated = script.documents()[service]
    assert path.exists() and json.loads(path.read_text()) == generated, (
        f"docs/asyncapi/{service}.json is stale: run `uv run python scripts/asyncapi.py`"
    )


def test_documents_are_asyncapi_3_with_operations() -> None:
    for service, doc in script.documents().items():
        assert doc["asyncapi"].startswith("3."), service
        assert doc["operations"], service
        for op in doc["operations"].values():
            channel = op["channel"]["$ref"].split("/")[-1]
            assert channel in doc["channels"], (service, channel)

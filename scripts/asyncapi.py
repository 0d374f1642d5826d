"""Regenerate docs/asyncapi/<service>.json from each service's code.

uv run python scripts/asyncapi.py          # write
uv run python scripts/asyncapi.py --check  # exit 1 if any document is stale
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1] / "docs" / "asyncapi"
SERVICES = {
    "alerts-api": "alerts_api.app",
    "eas-monitor": "eas_monitor.app",
    "station-api": "station_api.app",
}


def documents() -> dict[str, dict[str, Any]]:
    return {
        name: importlib.import_module(mod).asyncapi_document() for name, mod in SERVICES.items()
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for name, doc in documents().items():
        path = DOCS / f"{name}.json"
        if args.check:
            if not path.exists() or json.loads(path.read_text()) != doc:
                stale.append(name)
        else:
            path.write_text(render(doc))
    if stale:
        print(
            f"stale AsyncAPI documents: {', '.join(stale)}; run scripts/asyncapi.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

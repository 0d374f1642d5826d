"""Regenerate docs/asyncapi/<service>.json from each service's code.

uv run python scripts/asyncapi.py          # write
uv run python scripts/asyncapi.py --check  # exit 1 if any document is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from servicekit.manifest import installed

DOCS = Path(__file__).resolve().parents[1] / "docs" / "asyncapi"


def documents() -> dict[str, dict[str, Any]]:
    """Each installed service's document (the services that publish or consume on the bus)."""
    return {m.name: m.asyncapi_document() for m in installed() if m.asyncapi_document}


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

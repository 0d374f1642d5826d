"""`eas-station import-flask`: bring a Flask EAS Station's data into this station."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from .importer import Importer, Report, Target, flask_pepper
from .source import SourceError, read_flask

__all__ = ["Importer", "Report", "SourceError", "Target", "main"]


def main(
    source_url: str,
    target_url: str | None,
    data_dir: Path,
    secret_key_file: Path | None,
    dry_run: bool,
) -> int:
    target_url = target_url or os.environ.get("EAS_DATABASE_URL")
    if not target_url:
        target_url = f"sqlite+aiosqlite:///{(data_dir / 'eas-station.db').resolve()}"
    chain_key = Path(os.environ.get("EAS_CHAIN_KEY_FILE") or data_dir / "keys" / "chain.pem")
    secret = os.environ.get("FLASK_SECRET_KEY")
    if secret_key_file is not None:
        try:
            secret = secret_key_file.read_text().strip()
        except OSError as exc:
            print(f"cannot read --flask-secret-key-file: {exc}", file=sys.stderr)
            return 2
    try:
        rows = asyncio.run(read_flask(source_url))
    except SourceError as exc:
        print(f"import-flask: {exc}; nothing was written", file=sys.stderr)
        return 2
    if not dry_run:
        data_dir.mkdir(parents=True, exist_ok=True)
    importer = Importer(Target(target_url, chain_key, data_dir), flask_pepper(secret), dry_run)
    report = asyncio.run(importer.run(rows))
    for line in report.lines():
        print(line)
    return 0

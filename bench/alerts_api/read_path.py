"""CPU per GET /api/alerts database read, in-process: what the transaction and ping cost.

alerts-api reads the page with ``async with engine.connect() as conn`` on an engine made with
``pool_pre_ping=True``: per request that is a ping, BEGIN, the SELECT and ROLLBACK (4 round
trips for 1 query). This measures repo.list_page (50 rows) under three engine/connection
setups, as CPU time (time.process_time) per call, which is robust to other load on the box.

    cd /work/main && uv run --frozen python bench/alerts_api/read_path.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import db_url, drop_database, print_machine, recreate_database

DB_NAME = "eas_bench_readpath"


async def measure(url: str, calls: int) -> list[tuple[str, float]]:
    from sqlalchemy.ext.asyncio import create_async_engine

    from alerts_api import repository as repo
    from servicekit.db import make_engine, normalize_database_url

    as_is = make_engine(url, pool_size=4)  # servicekit's engine, as alerts-api uses it
    no_ping = create_async_engine(normalize_database_url(url), pool_size=4, max_overflow=4)
    filters = repo.AlertFilters()
    out = []

    async def run(label: str, engine, autocommit: bool) -> None:
        async def once() -> None:
            async with engine.connect() as conn:
                if autocommit:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                rows = await repo.list_page(conn, filters, None, 50)
                assert len(rows) == 50

        for _ in range(50):
            await once()
        t = time.process_time()
        for _ in range(calls):
            await once()
        out.append((label, 1000 * (time.process_time() - t) / calls))

    for _ in range(2):  # two rounds, interleaved, to see the noise
        await run("servicekit engine (pre_ping), connect() [as alerts-api]", as_is, False)
        await run("servicekit engine (pre_ping), AUTOCOMMIT", as_is, True)
        await run("no pre_ping, connect()", no_ping, False)
        await run("no pre_ping, AUTOCOMMIT", no_ping, True)
    await as_is.dispose()
    await no_ping.dispose()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.calls = 300
    print_machine("alerts-api read path: CPU per list_page(50) call")
    from http_bench import seed

    url = db_url(DB_NAME)
    try:
        recreate_database(DB_NAME)
        asyncio.run(seed(url, 400))
        results = asyncio.run(measure(url, args.calls))
    finally:
        drop_database(DB_NAME)
    print("| setup | client CPU ms per call |\n|---|---|")
    for label, ms in results:
        print(f"| {label} | {ms:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

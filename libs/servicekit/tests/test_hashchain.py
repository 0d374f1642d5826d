"""The hash chain: every kind of tampering is caught at the right first link, concurrent
appends never fork it (PostgreSQL), retention keeps it verifiable, keys are made once."""

from __future__ import annotations

import asyncio
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text, select, text, update

from servicekit.db import make_engine
from servicekit.hashchain import (
    GENESIS,
    BrokenBecause,
    ChainKey,
    HashChain,
    chain_heads_table,
    link_hash,
)
from servicekit.sqltypes import UTCDateTime

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _tables() -> tuple[MetaData, Table, Table]:
    metadata = MetaData()
    entries = Table(
        "test_log",
        metadata,
        Column("seq", BigInteger, primary_key=True, autoincrement=False),
        Column("at", UTCDateTime(), nullable=False),
        Column("what", Text, nullable=False),
        Column("actor", String(64)),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        Column("signature", Text, nullable=False),
    )
    return metadata, entries, chain_heads_table(metadata, "test_chain_heads")


@pytest.fixture(params=["postgresql", "sqlite"])
async def chain(request, database_url, tmp_path):
    url = database_url if request.param == "postgresql" else f"sqlite:///{tmp_path / 'c.db'}"
    metadata, entries, heads = _tables()
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    key = ChainKey.load_or_create(tmp_path / "keys" / "chain.pem")
    yield engine, HashChain("test-log", entries, heads, key, ["at", "what", "actor"])
    await engine.dispose()


async def _append(engine, chain: HashChain, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        async with engine.begin() as conn:
            await chain.append(
                conn, {"at": T0 + timedelta(days=i), "what": f"entry {i + 1}", "actor": "op"}
            )


async def _sql(engine, sql: str, **params) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql), params)


async def test_an_untouched_chain_is_intact(chain):
    engine, log = chain
    verdict = await log.verify(engine)
    assert verdict.intact and verdict.count == 0
    await _append(engine, log, 5)
    verdict = await log.verify(engine)
    assert verdict.intact, verdict.broken
    assert (verdict.count, verdict.first_seq, verdict.last_seq) == (5, 1, 5)
    async with engine.connect() as conn:
        first = (await conn.execute(select(log.table).where(log.seq == 1))).one()
    assert first.prev_hash == GENESIS
    assert first.hash == link_hash(
        "test-log", 1, GENESIS, {"at": first.at, "what": "entry 1", "actor": "op"}
    )


async def test_an_edited_entry_is_the_first_broken_link(chain):
    engine, log = chain
    await _append(engine, log, 5)
    await _sql(engine, "UPDATE test_log SET what = 'nothing happened' WHERE seq = 3")
    verdict = await log.verify(engine)
    assert not verdict.intact
    assert verdict.broken is not None
    assert (verdict.broken.seq, verdict.broken.reason) == (3, BrokenBecause.EDITED)
    assert "edited" in verdict.broken.detail


async def test_a_deleted_entry_is_a_gap(chain):
    engine, log = chain
    await _append(engine, log, 5)
    await _sql(engine, "DELETE FROM test_log WHERE seq = 2")
    verdict = await log.verify(engine)
    assert verdict.broken is not None
    assert (verdict.broken.seq, verdict.broken.reason) == (2, BrokenBecause.DELETED)


async def test_entries_deleted_from_the_end_are_named_by_the_head(chain):
    engine, log = chain
    await _append(engine, log, 5)
    await _sql(engine, "DELETE FROM test_log WHERE seq >= 4")
    verdict = await log.verify(engine)
    assert verdict.broken is not None
    assert (verdict.broken.seq, verdict.broken.reason) == (4, BrokenBecause.DELETED)
    assert "4-5" in verdict.broken.detail


async def test_reordered_entries_are_caught(chain):
    engine, log = chain
    await _append(engine, log, 5)
    # Swap the sequence numbers of entries 2 and 4 (through a free number: seq is the key).
    await _sql(engine, "UPDATE test_log SET seq = 1000 WHERE seq = 2")
    await _sql(engine, "UPDATE test_log SET seq = 2 WHERE seq = 4")
    await _sql(engine, "UPDATE test_log SET seq = 4 WHERE seq = 1000")
    verdict = await log.verify(engine)
    assert verdict.broken is not None
    assert (verdict.broken.seq, verdict.broken.reason) == (2, BrokenBecause.REORDERED)


async def test_an_entry_re_signed_with_another_key_is_caught(chain):
    engine, log = chain
    await _append(engine, log, 5)
    async with engine.connect() as conn:
        row = (await conn.execute(select(log.table).where(log.seq == 3))).one()
    # A consistent forgery: new fields, their correct hash, a signature by another key.
    forged = {"at": row.at, "what": "forged", "actor": row.actor}
    digest = link_hash("test-log", 3, row.prev_hash, forged)
    other = ChainKey.generate()
    async with engine.begin() as conn:
        await conn.execute(
            update(log.table)
            .where(log.seq == 3)
            .values(what="forged", hash=digest, signature=other.sign("link", digest))
        )
    # The entry after it still names the old hash, but the forgery is the first broken link.
    verdict = await log.verify(engine)
    assert verdict.broken is not None
    assert (verdict.broken.seq, verdict.broken.reason) == (3, BrokenBecause.BAD_SIGNATURE)


async def test_the_same_rows_do_not_verify_with_another_key(chain):
    engine, log = chain
    await _append(engine, log, 2)
    stranger = HashChain("test-log", log.table, log.heads, ChainKey.generate(), log.fields)
    verdict = await stranger.verify(engine)
    assert verdict.broken is not None and verdict.broken.reason is BrokenBecause.BAD_HEAD


async def test_pruning_keeps_the_chain_verifiable(chain):
    engine, log = chain
    await _append(engine, log, 6)
    async with engine.begin() as conn:
        deleted = await log.prune(conn, log.table.c.at < T0 + timedelta(days=3))
    assert deleted == 3
    verdict = await log.verify(engine)
    assert verdict.intact, verdict.broken
    assert (verdict.count, verdict.first_seq, verdict.last_seq) == (3, 4, 6)
    await _append(engine, log, 2, start=6)
    assert (await log.verify(engine)).intact
    # Deleting past the anchor is still caught.
    await _sql(engine, "DELETE FROM test_log WHERE seq = 4")
    verdict = await log.verify(engine)
    assert verdict.broken is not None
    assert (verdict.broken.seq, verdict.broken.reason) == (4, BrokenBecause.DELETED)


async def test_pruning_everything_then_appending(chain):
    engine, log = chain
    await _append(engine, log, 3)
    async with engine.begin() as conn:
        assert await log.prune(conn, log.table.c.at < T0 + timedelta(days=30)) == 3
    verdict = await log.verify(engine)
    assert verdict.intact and verdict.count == 0
    await _append(engine, log, 1, start=40)
    verdict = await log.verify(engine)
    assert verdict.intact and verdict.first_seq == 4


async def test_a_forged_anchor_is_caught(chain):
    engine, log = chain
    await _append(engine, log, 4)
    async with engine.begin() as conn:
        await log.prune(conn, log.table.c.at < T0 + timedelta(days=1))
    # Someone deletes entry 2 and moves the anchor past it to hide the deletion.
    await _sql(engine, "DELETE FROM test_log WHERE seq = 2")
    async with engine.connect() as conn:
        prev = (await conn.execute(select(log.table.c.prev_hash).where(log.seq == 3))).scalar_one()
    await _sql(engine, "UPDATE test_chain_heads SET anchor_seq = 3, anchor_prev = :p", p=prev)
    verdict = await log.verify(engine)
    assert verdict.broken is not None and verdict.broken.reason is BrokenBecause.BAD_ANCHOR


async def test_concurrent_appends_never_fork_the_chain(database_url, tmp_path):
    metadata, entries, heads = _tables()
    engine = make_engine(database_url, pool_size=8)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    key = ChainKey.load_or_create(tmp_path / "chain.pem")
    # Two writers, as two replicas would be: each with its own engine and chain object.
    other_engine = make_engine(database_url, pool_size=8)
    a = HashChain("test-log", entries, heads, key, ["at", "what", "actor"])
    b = HashChain("test-log", entries, heads, key, ["at", "what", "actor"])

    async def writer(engine_, chain_: HashChain, name: str) -> None:
        for i in range(25):
            async with engine_.begin() as conn:
                await chain_.append(conn, {"at": T0, "what": f"{name} {i}", "actor": name})
                await asyncio.sleep(0)  # hold the transaction across a switch

    try:
        await asyncio.gather(
            *(writer(engine, a, f"a{k}") for k in range(3)),
            *(writer(other_engine, b, f"b{k}") for k in range(3)),
        )
        verdict = await a.verify(engine)
        assert verdict.intact, verdict.broken
        assert (verdict.count, verdict.last_seq) == (150, 150)
        async with engine.connect() as conn:
            prevs = (await conn.execute(select(entries.c.prev_hash))).scalars().all()
        assert len(set(prevs)) == 150  # no two entries follow the same one: no fork
    finally:
        await engine.dispose()
        await other_engine.dispose()


def test_the_key_is_made_once_and_private(tmp_path: Path):
    path = tmp_path / "keys" / "chain.pem"
    first = ChainKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = ChainKey.load_or_create(path)
    assert first.key_id == again.key_id
    signature = first.sign("link", "ab" * 32)
    assert again.valid("link", "ab" * 32, signature)
    assert not again.valid("head", "ab" * 32, signature)  # purpose is part of what is signed
    assert not ChainKey.generate().valid("link", "ab" * 32, signature)

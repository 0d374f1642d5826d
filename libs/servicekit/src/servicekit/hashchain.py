"""Tamper-evident logs: a hash chain over a table's rows, each link signed with Ed25519.

Each entry's fields are serialised as canonical JSON (sorted keys, no spaces, times in UTC
ISO 8601) together with the chain's name, the entry's ``seq`` and the previous link's hash;
the SHA-256 of that is the entry's ``hash``, and an Ed25519 signature over it is its
``signature``. The key lives in a file outside the database (``load_or_create_private_key``,
0600, made on first start), so someone who can write to the database but not read that
file can neither edit an entry, nor insert, delete or reorder entries, without ``verify``
naming the first link that no longer holds:

* hash mismatch: the entry's fields (or its own hash) were edited;
* sequence gap (or fewer entries than the head names): entries were deleted;
* ``prev_hash`` that is another entry's hash: entries were reordered;
* ``prev_hash`` that is no entry's hash: the link to its predecessor was edited;
* a consistent hash whose signature fails: the entry was re-hashed and re-signed with
  another key.

A head row per chain (``chain_heads_table``) holds the last link's ``seq`` and hash, signed;
appends lock it (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite serialises writers, and the
head upsert is the write that takes its lock), so concurrent writers — two replicas — take
turns and the chain never forks. The head also names entries deleted from the end.

Retention deletes a prefix of the chain; ``prune`` records an anchor first (the first kept
entry's ``seq`` and ``prev_hash``, signed), and ``verify`` starts from the anchor.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import BaseModel, Field
from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eas_schemas.clock import utcnow
from servicekit.auth.tokens import load_or_create_private_key
from servicekit.sqltypes import UTCDateTime

GENESIS = "0" * 64


# ---- the key -----------------------------------------------------------------------------


class ChainKey:
    """The Ed25519 key that signs every link (kept in a file, never in the database)."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public: Ed25519PublicKey = private.public_key()
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        # Short and stable: which key a chain was signed with, for the operator.
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]

    @classmethod
    def load_or_create(cls, path: Path) -> ChainKey:
        return cls(load_or_create_private_key(path))

    @classmethod
    def generate(cls) -> ChainKey:
        return cls(Ed25519PrivateKey.generate())

    def sign(self, purpose: str, message: str) -> str:
        # The purpose is signed too, so a link's signature can never pass as a head's.
        signature = self._private.sign(f"{purpose}:{message}".encode())
        return base64.b64encode(signature).decode()

    def valid(self, purpose: str, message: str, signature: str) -> bool:
        try:
            self.public.verify(
                base64.b64decode(signature, validate=True), f"{purpose}:{message}".encode()
            )
        except (InvalidSignature, ValueError):
            return False
        return True


# ---- canonical form and link hashes --------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a chained entry: store times in UTC")
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        # Floats do not round-trip through every database the same way; store them as text.
        raise TypeError("floats are not chained: store a decimal string")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    raise TypeError(f"cannot chain a {type(value).__name__}")


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The one byte form of an entry: what its hash is computed over."""
    return json.dumps(
        _plain(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def link_hash(chain: str, seq: int, prev_hash: str, fields: Mapping[str, Any]) -> str:
    body = canonical({"chain": chain, "seq": seq, "prev": prev_hash, "entry": dict(fields)})
    return hashlib.sha256(body).hexdigest()


# ---- verification (pure) -------------------------------------------------------------------


class BrokenBecause(StrEnum):
    EDITED = "edited"
    DELETED = "deleted"
    REORDERED = "reordered"
    BAD_SIGNATURE = "bad_signature"
    BAD_HEAD = "bad_head"
    BAD_ANCHOR = "bad_anchor"


@dataclass(frozen=True, slots=True)
class Link:
    """One stored entry as verify sees it."""

    seq: int
    fields: Mapping[str, Any]
    prev_hash: str
    hash: str
    signature: str


@dataclass(frozen=True, slots=True)
class Head:
    """The chain's last link as the head row records it, and the anchor retention left."""

    seq: int
    hash: str
    signature: str
    anchor_seq: int
    anchor_prev: str
    anchor_signature: str | None


@dataclass(frozen=True, slots=True)
class BrokenLink:
    seq: int
    reason: BrokenBecause
    detail: str


@dataclass(frozen=True, slots=True)
class Verification:
    chain: str
    intact: bool
    count: int
    first_seq: int | None
    last_seq: int | None
    head_hash: str | None
    key_id: str
    broken: BrokenLink | None = None


class BrokenLinkOut(BaseModel):
    seq: int = Field(description="the first entry that no longer holds")
    reason: BrokenBecause = Field(
        description="edited, deleted, reordered, bad_signature, bad_head or bad_anchor"
    )
    detail: str


class VerificationOut(BaseModel):
    """What a verify endpoint answers: intact, or the first broken link and why."""

    intact: bool
    count: int = Field(description="entries checked")
    first_seq: int | None
    last_seq: int | None
    head_hash: str | None = Field(description="the last entry's hash, when intact")
    key_id: str = Field(description="fingerprint of the public half of the signing key")
    broken: BrokenLinkOut | None = None

    @classmethod
    def of(cls, v: Verification) -> VerificationOut:
        broken = v.broken
        return cls(
            intact=v.intact,
            count=v.count,
            first_seq=v.first_seq,
            last_seq=v.last_seq,
            head_hash=v.head_hash if v.intact else None,
            key_id=v.key_id,
            broken=BrokenLinkOut(seq=broken.seq, reason=broken.reason, detail=broken.detail)
            if broken
            else None,
        )


def _head_message(chain: str, seq: int, hash_: str) -> str:
    return f"{chain}:{seq}:{hash_}"


def _anchor_message(chain: str, seq: int, prev: str) -> str:
    return f"{chain}:{seq}:{prev}"


@dataclass
class ChainVerifier:
    """Checks links fed in ``seq`` order, one at a time (a chain may not fit in memory).

    ``known`` maps every stored link hash to the ``seq`` of the row that carries it (a first
    pass over the hashes alone), so a ``prev_hash`` that names another entry is told apart
    (reordered) from one that names nothing (edited)."""

    chain: str
    key: ChainKey
    head: Head | None
    known: Mapping[str, int] = field(default_factory=dict)
    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    broken: BrokenLink | None = None
    _expect_seq: int = 1
    _expect_prev: str = GENESIS

    def __post_init__(self) -> None:
        head = self.head
        if head is None:
            return
        if not self.key.valid(
            "head", _head_message(self.chain, head.seq, head.hash), head.signature
        ):
            self.broken = BrokenLink(
                head.seq,
                BrokenBecause.BAD_HEAD,
                "the chain head's signature does not verify with this station's key: the head "
                "row was edited or written with another key",
            )
            return
        if head.anchor_signature is not None:
            message = _anchor_message(self.chain, head.anchor_seq, head.anchor_prev)
            if not self.key.valid("anchor", message, head.anchor_signature):
                self.broken = BrokenLink(
                    head.anchor_seq,
                    BrokenBecause.BAD_ANCHOR,
                    "the retention anchor's signature does not verify: it was edited",
                )
                return
        self._expect_seq, self._expect_prev = head.anchor_seq, head.anchor_prev

    def feed(self, link: Link) -> bool:
        """Check one link; False once the chain is broken (stop feeding)."""
        if self.broken is not None:
            return False
        self.count += 1
        self.first_seq = link.seq if self.first_seq is None else self.first_seq
        if link.seq > self._expect_seq:
            first, last = self._expect_seq, link.seq - 1
            missing = f"entry {first} is" if first == last else f"entries {first}-{last} are"
            return self._break(
                first,
                BrokenBecause.DELETED,
                f"{missing} missing before entry {link.seq}: deleted",
            )
        if link.seq < self._expect_seq:
            return self._break(
                link.seq,
                BrokenBecause.REORDERED,
                f"entry {link.seq} appears again after entry {self._expect_seq - 1}",
            )
        computed = link_hash(self.chain, link.seq, link.prev_hash, link.fields)
        if link.prev_hash != self._expect_prev:
            elsewhere = self.known.get(link.prev_hash)
            if elsewhere is not None and elsewhere != link.seq - 1:
                return self._break(
                    link.seq,
                    BrokenBecause.REORDERED,
                    f"entry {link.seq} was written after the entry now numbered {elsewhere}, "
                    f"not after entry {link.seq - 1}: entries were reordered",
                )
            return self._break(
                link.seq,
                BrokenBecause.EDITED,
                f"entry {link.seq} does not continue from entry {link.seq - 1}: its link "
                "(prev_hash) or its predecessor's hash was edited",
            )
        if computed != link.hash:
            return self._break(
                link.seq,
                BrokenBecause.EDITED,
                f"entry {link.seq} was edited: its fields no longer give its hash",
            )
        if not self.key.valid("link", link.hash, link.signature):
            return self._break(
                link.seq,
                BrokenBecause.BAD_SIGNATURE,
                f"entry {link.seq}'s signature does not verify with this station's key: it was "
                "re-hashed and re-signed without it",
            )
        self.last_seq, self.last_hash = link.seq, link.hash
        self._expect_seq, self._expect_prev = link.seq + 1, link.hash
        return True

    def _break(self, seq: int, reason: BrokenBecause, detail: str) -> bool:
        self.broken = BrokenLink(seq, reason, detail)
        return False

    def result(self) -> Verification:
        if self.broken is None and self.head is not None:
            last = self._expect_seq - 1
            if last < self.head.seq:
                first = last + 1
                missing = (
                    f"entry {first} is"
                    if first == self.head.seq
                    else f"entries {first}-{self.head.seq} are"
                )
                self.broken = BrokenLink(
                    first,
                    BrokenBecause.DELETED,
                    f"{missing} missing at the end (the chain head names entry "
                    f"{self.head.seq}): deleted",
                )
            elif last > self.head.seq or self._expect_prev != self.head.hash:
                self.broken = BrokenLink(
                    self.head.seq,
                    BrokenBecause.EDITED,
                    "the last entry is not the one the chain head names: entries were added "
                    "or replaced outside the chain",
                )
        if self.broken is None and self.head is None and self.count:
            self.broken = BrokenLink(
                self.first_seq or 1,
                BrokenBecause.BAD_HEAD,
                "entries exist but the chain head is gone: it was deleted",
            )
        return Verification(
            chain=self.chain,
            intact=self.broken is None,
            count=self.count,
            first_seq=self.first_seq,
            last_seq=self.last_seq,
            head_hash=self.last_hash,
            key_id=self.key.key_id,
            broken=self.broken,
        )


# ---- storage -------------------------------------------------------------------------------


def chain_heads_table(metadata: MetaData, name: str) -> Table:
    """One row per chain: its last link (signed) and the anchor retention left."""
    return Table(
        name,
        metadata,
        Column("chain", String(64), primary_key=True),
        Column("seq", BigInteger, nullable=False, comment="the last link's seq (0: empty)"),
        Column("hash", String(64), nullable=False),
        Column("signature", Text, nullable=False),
        Column("anchor_seq", BigInteger, nullable=False, comment="the first entry kept"),
        Column("anchor_prev", String(64), nullable=False, comment="its prev_hash"),
        Column("anchor_signature", Text, comment="signed when retention pruned the chain"),
        Column("updated_at", UTCDateTime(), nullable=False),
    )


@dataclass(frozen=True, slots=True)
class Sealed:
    seq: int
    prev_hash: str
    hash: str
    signature: str


class HashChain:
    """A chain over ``table``: its rows carry ``seq``, ``prev_hash``, ``hash`` and
    ``signature`` columns, and ``fields`` names the columns the hash covers."""

    def __init__(
        self,
        name: str,
        table: Table,
        heads: Table,
        key: ChainKey,
        fields: Sequence[str],
        seq_column: str = "seq",
    ) -> None:
        self.name = name
        self.table = table
        self.heads = heads
        self.key = key
        self.fields = tuple(fields)
        self.seq = table.c[seq_column]
        self._empty: dict[str, Any] | None = None
        missing = [f for f in self.fields if f not in table.c]
        if missing:
            raise ValueError(f"{table.name} has no column {missing[0]!r}")

    # ---- writing ---------------------------------------------------------------------

    async def lock(self, conn: AsyncConnection) -> Head:
        """Take the chain's head (creating it) for the rest of the transaction."""
        insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
        if self._empty is None:
            # Signed once: it is only ever stored by the very first append.
            self._empty = self._head_values(0, GENESIS)
        await conn.execute(
            insert(self.heads)
            .values(chain=self.name, anchor_seq=1, anchor_prev=GENESIS, **self._empty)
            .on_conflict_do_nothing(index_elements=["chain"])
        )
        stmt = select(self.heads).where(self.heads.c.chain == self.name)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        row = (await conn.execute(stmt)).one()
        return _head(row)

    async def append(self, conn: AsyncConnection, values: Mapping[str, Any]) -> Sealed:
        """Insert one entry as the chain's next link, in the caller's transaction.

        Call it last in a transaction that takes other locks: the head is held until the
        commit, and taking it last keeps lock order the same everywhere."""
        head = await self.lock(conn)
        entry = {f: values.get(f) for f in self.fields}
        seq = head.seq + 1
        digest = link_hash(self.name, seq, head.hash, entry)
        sealed = Sealed(seq, head.hash, digest, self.key.sign("link", digest))
        row = {
            **values,
            self.seq.name: seq,
            "prev_hash": sealed.prev_hash,
            "hash": sealed.hash,
            "signature": sealed.signature,
        }
        await conn.execute(self.table.insert().values(**row))
        await conn.execute(
            update(self.heads)
            .where(self.heads.c.chain == self.name)
            .values(**self._head_values(seq, digest))
        )
        return sealed

    async def seal_unchained(self, conn: AsyncConnection, key: Column[Any]) -> int:
        """Chain rows written before the chain existed (``seq`` null), in the order of
        ``key`` (a unique column: it also names each row to update)."""
        head = await self.lock(conn)
        rows = (
            await conn.execute(select(self.table).where(self.seq.is_(None)).order_by(key))
        ).all()
        seq, prev = head.seq, head.hash
        for row in rows:
            seq += 1
            entry = {f: getattr(row, f) for f in self.fields}
            digest = link_hash(self.name, seq, prev, entry)
            await conn.execute(
                update(self.table)
                .where(key == getattr(row, key.name))
                .values(
                    {
                        self.seq.name: seq,
                        "prev_hash": prev,
                        "hash": digest,
                        "signature": self.key.sign("link", digest),
                    }
                )
            )
            prev = digest
        if rows:
            await conn.execute(
                update(self.heads)
                .where(self.heads.c.chain == self.name)
                .values(**self._head_values(seq, prev))
            )
        return len(rows)

    def _head_values(self, seq: int, hash_: str) -> dict[str, Any]:
        return {
            "seq": seq,
            "hash": hash_,
            "signature": self.key.sign("head", _head_message(self.name, seq, hash_)),
            "updated_at": utcnow(),
        }

    async def prune(self, conn: AsyncConnection, before: Any) -> int:
        """Delete the oldest entries matching ``before`` (a condition on the table, e.g.
        ``at < cutoff``) up to the first entry that does not match, anchoring the chain at
        the first entry kept. Only a prefix is ever deleted, so the chain stays whole."""
        head = await self.lock(conn)
        first_kept = (
            await conn.execute(select(func.min(self.seq)).where(~before, self.seq.is_not(None)))
        ).scalar_one_or_none()
        if first_kept is None:
            # Everything is old: the next entry continues from the head.
            anchor_seq, anchor_prev = head.seq + 1, head.hash
        else:
            anchor_seq = int(first_kept)
            anchor_prev = (
                await conn.execute(select(self.table.c.prev_hash).where(self.seq == anchor_seq))
            ).scalar_one()
        if anchor_seq <= head.anchor_seq:
            return 0
        await conn.execute(
            update(self.heads)
            .where(self.heads.c.chain == self.name)
            .values(
                anchor_seq=anchor_seq,
                anchor_prev=anchor_prev,
                anchor_signature=self.key.sign(
                    "anchor", _anchor_message(self.name, anchor_seq, anchor_prev)
                ),
            )
        )
        result = await conn.execute(delete(self.table).where(self.seq < anchor_seq))
        return int(result.rowcount)

    # ---- reading ---------------------------------------------------------------------

    async def head(self, conn: AsyncConnection) -> Head | None:
        row = (
            await conn.execute(select(self.heads).where(self.heads.c.chain == self.name))
        ).one_or_none()
        return _head(row) if row is not None else None

    async def links(self, conn: AsyncConnection, page: int = 1000) -> AsyncIterator[Link]:
        after: int | None = None
        columns = [self.table.c[f] for f in self.fields]
        t = self.table
        while True:
            stmt = (
                select(self.seq, t.c.prev_hash, t.c.hash, t.c.signature, *columns)
                .where(self.seq.is_not(None))
                .order_by(self.seq)
                .limit(page)
            )
            if after is not None:
                stmt = stmt.where(self.seq > after)
            rows = (await conn.execute(stmt)).all()
            for r in rows:
                m = r._mapping
                yield Link(
                    seq=int(m[self.seq.name]),
                    fields={f: m[f] for f in self.fields},
                    prev_hash=str(m["prev_hash"]),
                    hash=str(m["hash"]),
                    signature=str(m["signature"]),
                )
            if len(rows) < page:
                return
            after = int(rows[-1]._mapping[self.seq.name])

    async def _hashes(self, conn: AsyncConnection) -> dict[str, int]:
        stmt = select(self.table.c.hash, self.seq).where(self.seq.is_not(None))
        return {str(h): int(s) for h, s in (await conn.execute(stmt)).all()}

    async def verify(self, engine: AsyncEngine, page: int = 1000) -> Verification:
        """Walk the whole chain in one snapshot (REPEATABLE READ on PostgreSQL, so appends
        and pruning meanwhile are not mistaken for tampering)."""
        async with engine.connect() as base:
            conn = (
                await base.execution_options(isolation_level="REPEATABLE READ")
                if engine.dialect.name == "postgresql"
                else base
            )
            async with conn.begin():
                known = await self._hashes(conn)
                verifier = ChainVerifier(self.name, self.key, await self.head(conn), known)
                async for link in self.links(conn, page):
                    if not verifier.feed(link):
                        break
        return verifier.result()


def _head(row: Any) -> Head:
    return Head(
        seq=int(row.seq),
        hash=str(row.hash),
        signature=str(row.signature),
        anchor_seq=int(row.anchor_seq),
        anchor_prev=str(row.anchor_prev),
        anchor_signature=row.anchor_signature,
    )

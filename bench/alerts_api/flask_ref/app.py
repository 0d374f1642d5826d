"""Reference implementation of GET /api/alerts in Flask, the way a typical Flask app does it.

Same PostgreSQL database and rows as alerts-api. Per request: verify the Bearer token
(Ed25519 JWT, pyjwt, the same public key and claims checks as servicekit's TokenVerifier),
query the 50 newest alerts (ORDER BY sent DESC, id DESC, the same default filters), load
their SAME/UGC codes and references, turn each row into a dict and ``jsonify`` it.

Modes (env FLASK_REF_MODE):
  orm   (default) SQLAlchemy 2 ORM models, relationships loaded with selectinload
  core  SQLAlchemy Core rows + two IN queries, dicts built by hand

description/instruction are not columns of the alert store (they live in the CAP document
column ``cap``), so they are extracted by PostgreSQL (``cap::jsonb #>> '{infos,0,...}'``) for
the 50 returned rows only; Python never parses the CAP document.

Environment: FLASK_REF_DATABASE_URL (postgresql+psycopg://...), FLASK_REF_PUBLIC_KEY_FILE,
FLASK_REF_POOL_SIZE (default 10), FLASK_REF_MODE.

    gunicorn --pythonpath bench/alerts_api -k gthread -w 2 --threads 8 'flask_ref.app:create_app()'
"""

from __future__ import annotations

import os
from datetime import datetime
from functools import wraps
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from flask import Flask, g, jsonify, request
from peers.common import ROLES_THAT_READ as ROLE_CAN_READ
from peers.common import STATES, decode_claims
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    String,
    Text,
    create_engine,
    literal_column,
    select,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    column_property,
    mapped_column,
    relationship,
    selectinload,
)


class Base(DeclarativeBase):
    pass


class AlertCode(Base):
    __tablename__ = "alert_codes"
    alert_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("alerts.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    code: Mapped[str] = mapped_column(String(16), primary_key=True)


class AlertReference(Base):
    __tablename__ = "alert_references"
    alert_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("alerts.id"), primary_key=True)
    ref_sender: Mapped[str] = mapped_column(String(255), primary_key=True)
    ref_identifier: Mapped[str] = mapped_column(String(255), primary_key=True)
    ref_sent: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    ref_alert_id: Mapped[int | None] = mapped_column(BigInteger)


class Alert(Base):
    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sender: Mapped[str] = mapped_column(String(255))
    identifier: Mapped[str] = mapped_column(String(255))
    sent: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    msg_type: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    feed: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(255))
    same_event: Mapped[str | None] = mapped_column(String(3))
    severity: Mapped[str] = mapped_column(String(16))
    urgency: Mapped[str] = mapped_column(String(16))
    certainty: Mapped[str] = mapped_column(String(16))
    headline: Mapped[str | None] = mapped_column(Text)
    area_desc: Mapped[str] = mapped_column(Text)
    onset: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    effective: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    relevant: Mapped[bool] = mapped_column(Boolean)
    relevance_reason: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    description: Mapped[str | None] = column_property(
        literal_column("(alerts.cap::jsonb #>> '{infos,0,description}')", Text)
    )
    instruction: Mapped[str | None] = column_property(
        literal_column("(alerts.cap::jsonb #>> '{infos,0,instruction}')", Text)
    )
    codes: Mapped[list[AlertCode]] = relationship(lazy="raise")
    refs: Mapped[list[AlertReference]] = relationship(lazy="raise")

    def to_dict(self) -> dict[str, Any]:
        return _item(self, self.codes, [r.ref_alert_id for r in self.refs])


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _item(a: Any, codes: list[Any], refs: list[int | None]) -> dict[str, Any]:
    return {
        "id": a.id,
        "identifier": a.identifier,
        "sender": a.sender,
        "sent": _iso(a.sent),
        "status": a.status,
        "msg_type": a.msg_type,
        "state": a.state,
        "source": a.source,
        "event": a.event,
        "same_event": a.same_event,
        "severity": a.severity,
        "urgency": a.urgency,
        "certainty": a.certainty,
        "headline": a.headline,
        "area_desc": a.area_desc,
        "same_codes": [c.code for c in codes if c.kind == "SAME"],
        "ugc_codes": [c.code for c in codes if c.kind == "UGC"],
        "onset": _iso(a.onset),
        "expires": _iso(a.expires),
        "relevant": a.relevant,
        "relevance_reason": a.relevance_reason,
        "references": [r for r in refs if r is not None],
        "scope": a.scope,
        "feed": a.feed,
        "description": a.description,
        "instruction": a.instruction,
        "effective": _iso(a.effective),
        "received_at": _iso(a.received_at),
        "updated_at": _iso(a.updated_at),
    }


def create_app() -> Flask:
    url = os.environ["FLASK_REF_DATABASE_URL"]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    pool = int(os.environ.get("FLASK_REF_POOL_SIZE", "10"))
    mode = os.environ.get("FLASK_REF_MODE", "orm")
    engine = create_engine(url, pool_size=pool, max_overflow=pool, pool_pre_ping=True)
    with open(os.environ["FLASK_REF_PUBLIC_KEY_FILE"], "rb") as fh:
        public_key = serialization.load_pem_public_key(fh.read())

    app = Flask(__name__)

    def require_read(view: Any) -> Any:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                return jsonify(detail="authentication required"), 401
            try:
                # Verified on every request (no cache): the old design, as it was measured.
                claims = decode_claims(header[7:], public_key)
            except jwt.InvalidTokenError as exc:
                return jsonify(detail=f"invalid token: {exc}"), 401
            if claims.get("role") not in ROLE_CAN_READ:
                return jsonify(detail="forbidden"), 403
            g.subject = claims["sub"]
            return view(*args, **kwargs)

        return wrapper

    @app.get("/api/alerts")
    @require_read
    def list_alerts() -> Any:
        status = request.args.get("status", "all")
        if status not in STATES:
            return jsonify(detail="bad status"), 422
        try:
            limit = int(request.args.get("limit", "50"))
        except ValueError:
            return jsonify(detail="bad limit"), 422
        if not 1 <= limit <= 500:
            return jsonify(detail="bad limit"), 422
        states = STATES[status]
        with Session(engine) as session:
            if mode == "core":
                items = _core_page(session, states, limit)
            else:
                stmt = select(Alert).options(selectinload(Alert.codes), selectinload(Alert.refs))
                if states:
                    stmt = stmt.where(Alert.state.in_(states))
                stmt = stmt.order_by(Alert.sent.desc(), Alert.id.desc()).limit(limit)
                items = [a.to_dict() for a in session.scalars(stmt)]
        return jsonify(items=items, next_cursor=None)

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    return app


def _core_page(session: Session, states: tuple[str, ...] | None, limit: int) -> list[dict]:
    t = Alert.__table__
    stmt = select(
        *[c for c in t.c],
        Alert.description.expression.label("description"),  # type: ignore[attr-defined]
        Alert.instruction.expression.label("instruction"),  # type: ignore[attr-defined]
    )
    if states:
        stmt = stmt.where(t.c.state.in_(states))
    rows = session.execute(stmt.order_by(t.c.sent.desc(), t.c.id.desc()).limit(limit)).all()
    ids = [r.id for r in rows]
    codes: dict[int, list[Any]] = {i: [] for i in ids}
    refs: dict[int, list[int | None]] = {i: [] for i in ids}
    if ids:
        ct, rt = AlertCode.__table__, AlertReference.__table__
        for c in session.execute(select(ct).where(ct.c.alert_id.in_(ids))):
            codes[c.alert_id].append(c)
        for r in session.execute(
            select(rt.c.alert_id, rt.c.ref_alert_id).where(rt.c.alert_id.in_(ids))
        ):
            refs[r.alert_id].append(r.ref_alert_id)
    return [_item(r, codes[r.id], refs[r.id]) for r in rows]


app = None  # gunicorn target is the factory: 'flask_ref.app:create_app()'

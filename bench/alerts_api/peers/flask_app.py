"""Same-design Flask 3 peer: gunicorn sync workers, one psycopg connection per worker.

    PEER_DATABASE_URL=postgresql://... PEER_PUBLIC_KEY_FILE=... \
      gunicorn --pythonpath bench/alerts_api -k sync -w 5 'peers.flask_app:create_app()'
"""

from __future__ import annotations

import os
import threading
from typing import Any

import psycopg
from flask import Flask, Response, jsonify, request

from peers.common import (
    BY_SINCE_SQL,
    BY_SQL,
    COUNT_SINCE_SQL,
    COUNT_SQL,
    COUNT_STATE_SQL,
    DETAIL_SQL,
    HISTORY_SQL,
    LATER_SQL,
    LIST_SQL,
    REFS_SQL,
    STAT_COLUMNS,
    STATES,
    TokenCheck,
    detail_body,
    list_body,
    psycopg_sql,
    stats_windows,
)

_LIST, _DETAIL, _REFS, _LATER, _HISTORY = (
    psycopg_sql(s) for s in (LIST_SQL, DETAIL_SQL, REFS_SQL, LATER_SQL, HISTORY_SQL)
)


def create_app() -> Flask:
    url = os.environ["PEER_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    tokens = TokenCheck()
    local = threading.local()
    app = Flask(__name__)

    def conn() -> psycopg.Connection[Any]:
        # One connection per worker (sync: one request at a time), opened after the fork;
        # autocommit: a read is one round trip, no BEGIN/ROLLBACK. psycopg prepares a
        # statement on the server once it has run prepare_threshold (5) times.
        c = getattr(local, "conn", None)
        if c is None or c.closed:
            c = local.conn = psycopg.connect(url, autocommit=True)
        return c

    def refused() -> Any:
        status, reason = tokens.check(request.headers.get("Authorization"))
        if status:
            return jsonify(detail=reason), status
        return None

    @app.get("/api/alerts")
    def list_alerts() -> Any:
        if (no := refused()) is not None:
            return no
        status = request.args.get("status", "all")
        if status not in STATES:
            return jsonify(detail="status: not a state"), 422
        try:
            limit = int(request.args.get("limit", "50"))
        except ValueError:
            return jsonify(detail="limit: not an integer"), 422
        if not 1 <= limit <= 500:
            return jsonify(detail="limit: 1-500"), 422
        states = STATES[status]
        wanted = list(states) if states else None
        rows = conn().execute(_LIST, (wanted, wanted, limit + 1)).fetchall()
        return Response(list_body(rows, limit), mimetype="application/json")

    @app.get("/api/alerts/<int:alert_id>")
    def detail(alert_id: int) -> Any:
        if (no := refused()) is not None:
            return no
        c = conn()
        row = c.execute(_DETAIL, (alert_id,)).fetchone()
        if row is None:
            return jsonify(detail=f"no alert with id {alert_id}"), 404
        refs = c.execute(_REFS, (alert_id,)).fetchall()
        later = c.execute(_LATER, (alert_id,)).fetchall()
        hist = c.execute(_HISTORY, (alert_id,)).fetchall()
        return Response(detail_body(row, refs, later, hist), mimetype="application/json")

    @app.get("/api/alerts/stats")
    def stats() -> Any:
        if (no := refused()) is not None:
            return no
        c = conn()
        day, week = stats_windows()

        def one(sql: str, *args: Any) -> int:
            return int(c.execute(psycopg_sql(sql), args).fetchone()[0])  # type: ignore[index]

        def by(col: str, since: Any = None) -> dict[str, int]:
            sql = (BY_SQL if since is None else BY_SINCE_SQL).format(col=col)
            rows = c.execute(psycopg_sql(sql), () if since is None else (since,)).fetchall()
            return {str(k): int(v) for k, v in rows}

        out: dict[str, Any] = {
            "total": one(COUNT_SQL),
            "active": one(COUNT_STATE_SQL, "active"),
            "last_24h": one(COUNT_SINCE_SQL, day),
            "last_7d": one(COUNT_SINCE_SQL, week),
        }
        for col in STAT_COLUMNS:
            out[f"by_{col}"] = by(col)
        for col in STAT_COLUMNS[:3]:
            out[f"by_{col}_7d"] = by(col, week)
        return jsonify(out)

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify(status="ok")

    return app

"""What both same-design peers share: the SQL, the token check, the JSON they answer.

Same design as alerts-api: the list is ONE query over the pre-rendered ``item_json`` column
(no per-row rendering), the detail is the stored item and CAP document plus references,
referrers and history, the stats are the same eleven counts. The Bearer token is checked
with the same Ed25519 public key and claims (pyjwt, as servicekit's TokenVerifier does) and
a verified-token cache keyed by the whole token text, re-checking expiry on every hit.
Nothing here imports the project: the peers are what a small hand-written app would be.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

ISSUER = AUDIENCE = "eas-station"
ROLES_THAT_READ = {"viewer", "operator", "admin"}
STATES: dict[str, tuple[str, ...] | None] = {
    "active": ("active",),
    "expired": ("expired",),
    "cancelled": ("cancelled",),
    "updated": ("updated",),
    "inactive": ("expired", "cancelled", "updated"),
    "all": None,
}

# $1: states (NULL = every state), $2: limit. asyncpg and psycopg both take $n / %s; the
# two spellings below are the same statement.
LIST_SQL = (
    "SELECT id, sent, item_json FROM alerts WHERE ($1::text[] IS NULL OR state = ANY($1)) "
    "ORDER BY sent DESC, id DESC LIMIT $2"
)
DETAIL_SQL = "SELECT id, item_json, cap, geometry_json FROM alerts WHERE id = $1"
REFS_SQL = (
    "SELECT ref_sender, ref_identifier, ref_sent, ref_alert_id FROM alert_references "
    "WHERE alert_id = $1 ORDER BY ref_sent, ref_identifier"
)
LATER_SQL = (
    "SELECT a.id, a.identifier, a.msg_type, a.sent FROM alerts a JOIN alert_references r "
    "ON r.alert_id = a.id WHERE r.ref_alert_id = $1 ORDER BY a.sent, a.id"
)
HISTORY_SQL = (
    "SELECT at, from_state, to_state, reason, by_alert_id FROM alert_history "
    "WHERE alert_id = $1 ORDER BY id"
)
COUNT_SQL = "SELECT count(*) FROM alerts"
COUNT_STATE_SQL = "SELECT count(*) FROM alerts WHERE state = $1"
COUNT_SINCE_SQL = "SELECT count(*) FROM alerts WHERE sent >= $1"
BY_SQL = "SELECT {col}, count(*) FROM alerts GROUP BY {col}"
BY_SINCE_SQL = "SELECT {col}, count(*) FROM alerts WHERE sent >= $1 GROUP BY {col}"


def psycopg_sql(sql: str) -> str:
    """The same statement with psycopg's placeholders."""
    out = sql
    for n in range(9, 0, -1):
        out = out.replace(f"${n}", "%s")
    return out


def decode_claims(token: str, key: Any) -> dict[str, Any]:
    """The station's token rules (servicekit.auth.tokens): Ed25519, audience, issuer, 30 s
    leeway, required claims. Raises jwt.InvalidTokenError."""
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["EdDSA"],
        audience=AUDIENCE,
        issuer=ISSUER,
        leeway=30,
        options={"require": ["exp", "iat", "sub", "iss", "aud"]},
    )
    return claims


class TokenCheck:
    """Ed25519 JWT check with a verified-token cache (what servicekit's verifier does)."""

    def __init__(self, public_key_file: str | None = None, size: int = 4096) -> None:
        path = public_key_file or os.environ["PEER_PUBLIC_KEY_FILE"]
        with open(path, "rb") as fh:
            self.key = serialization.load_pem_public_key(fh.read())
        self.size = size
        self.verified: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def check(self, authorization: str | None) -> tuple[int, str]:
        """(0, subject) when the caller may read, else (HTTP status, reason)."""
        if not authorization or authorization[:7].lower() != "bearer ":
            return 401, "authentication required: send a Bearer token"
        token = authorization[7:]
        hit = self.verified.get(token)
        if hit is not None:
            if time.time() > hit[1] + 30:
                del self.verified[token]
                return 401, "token expired"
            return 0, hit[0]
        try:
            claims = decode_claims(token, self.key)
        except jwt.InvalidTokenError as exc:
            return 401, f"invalid token: {exc}"
        if claims.get("role") not in ROLES_THAT_READ:
            return 403, "forbidden"
        self.verified[token] = (str(claims["sub"]), float(claims["exp"]))
        if len(self.verified) > self.size:
            self.verified.popitem(last=False)
        return 0, str(claims["sub"])


def cursor(sent: datetime, alert_id: int) -> str:
    raw = json.dumps([sent.astimezone(UTC).isoformat(), alert_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def list_body(rows: list[Any], limit: int) -> bytes:
    """rows: (id, sent, item_json), one more than the page when another page exists."""
    more, rows = len(rows) > limit, rows[:limit]
    tail = json.dumps(cursor(rows[-1][1], rows[-1][0]) if more else None).encode()
    return (
        b'{"items":[' + b",".join(r[2].encode() for r in rows) + b'],"next_cursor":' + tail + b"}"
    )


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def detail_body(row: Any, refs: list[Any], later: list[Any], hist: list[Any]) -> bytes:
    return json.dumps(
        {
            "alert": json.loads(row[1]),
            "cap": json.loads(row[2]),
            "geometry": json.loads(row[3]) if row[3] else None,
            "references": [
                {"sender": s, "identifier": i, "sent": _iso(t), "alert_id": a}
                for s, i, t, a in refs
            ],
            "referenced_by": [
                {"id": i, "identifier": ident, "msg_type": m, "sent": _iso(t)}
                for i, ident, m, t in later
            ],
            "history": [
                {"at": _iso(at), "from_state": f, "to_state": t, "reason": why, "by_alert_id": by}
                for at, f, t, why, by in hist
            ],
        }
    ).encode()


def stats_windows() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(days=1), now - timedelta(days=7)


STAT_COLUMNS = ("event", "severity", "source", "state")

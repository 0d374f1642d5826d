"""One connection's conversation, the same for every transport: authenticate, then answer
client messages. Transports supply the ``Client`` (how bytes leave) and the incoming texts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

import orjson
from pydantic import ValidationError

from eas_schemas.ws_protocol import (
    ACCESS_COOKIE,
    CLIENT_MESSAGE,
    CLIENT_TYPES,
    FILTER_FIELDS,
    TOKEN_QUERY_PARAM,
    AuthMessage,
    CloseCode,
    ErrorCode,
    ErrorMessage,
    PingMessage,
    PongMessage,
    PrincipalInfo,
    ServerPongMessage,
    SubscribeMessage,
    Topic,
    UnsubscribedMessage,
    UnsubscribeMessage,
    WelcomeMessage,
)
from servicekit.auth.permissions import Permission
from servicekit.auth.tokens import Principal, TokenError, TokenVerifier
from ws_broadcaster.hub import Client, Hub

log = logging.getLogger(__name__)

REQUIRED = Permission.ALERTS_READ

# What each topic needs, as the REST routes that serve the same data do: a viewer (and an
# anonymous reader) does not see settings changes (who changed which section), an operator does.
TOPIC_PERMISSIONS: dict[Topic, Permission] = {
    Topic.ALERTS: Permission.ALERTS_READ,
    Topic.SAME: Permission.MONITOR_READ,
    Topic.MONITOR: Permission.MONITOR_READ,
    Topic.LEVELS: Permission.MONITOR_READ,
    Topic.POLLERS: Permission.SYSTEM_READ,
    Topic.HEALTH: Permission.SYSTEM_READ,
    Topic.SETTINGS: Permission.SETTINGS_READ,
    Topic.RELAY: Permission.AUDIO_READ,
    Topic.PLAYOUT: Permission.AUDIO_READ,
}
assert set(TOPIC_PERMISSIONS) == set(Topic), "every topic names its permission"


def allowed_topics(principal: Principal) -> list[Topic]:
    return [t for t in Topic if TOPIC_PERMISSIONS[t] in principal.permissions]


_TOPIC_VALUES = frozenset(t.value for t in Topic)


def extract_token(query: str, authorization: str | None, cookie: str | None) -> str | None:
    """The connect-time token: ``?token=``, then ``Authorization: Bearer``, then the cookie."""
    if query:
        values = parse_qs(query).get(TOKEN_QUERY_PARAM)
        if values and values[0]:
            return values[0]
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if cookie:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie)
        except CookieError:
            return None
        morsel = jar.get(ACCESS_COOKIE)
        if morsel is not None and morsel.value:
            return morsel.value
    return None


class AuthFailed(Exception):
    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Session:
    def __init__(
        self,
        hub: Hub,
        verifier: TokenVerifier | None,
        anonymous_read: bool,
        server_name: str,
    ) -> None:
        self.hub = hub
        self.verifier = verifier
        self.anonymous_read = anonymous_read
        self.server_name = server_name

    def authenticate(self, token: str) -> Principal:
        if self.verifier is None:
            raise AuthFailed(CloseCode.UNAUTHORIZED, "tokens cannot be verified here")
        try:
            principal = self.verifier.verify(token)
        except TokenError as exc:
            # A correctly signed token naming a role this station does not know is a role
            # problem, not a credentials problem: the client should not retry with it.
            code = (
                CloseCode.FORBIDDEN
                if str(exc).startswith("unknown role")
                else CloseCode.UNAUTHORIZED
            )
            raise AuthFailed(code, str(exc)[:120]) from exc
        if principal.expires_at is not None and principal.expires_at <= time.time():
            # The verifier allows clock-skew leeway; a socket living past `exp` does not.
            raise AuthFailed(CloseCode.UNAUTHORIZED, "token expired")
        if REQUIRED not in principal.permissions:
            raise AuthFailed(CloseCode.FORBIDDEN, f"role may not read ({REQUIRED.value})")
        return principal

    def welcome(self, client: Client, principal: Principal) -> None:
        settings = self.hub.settings
        client.set_principal(principal)
        # A re-auth with a lesser role keeps only what the new role may read.
        lost = [t for t in client.subs if TOPIC_PERMISSIONS[t] not in principal.permissions]
        if lost:
            self.hub.unsubscribe(client, lost)
        client.send_model(
            WelcomeMessage(
                server=self.server_name,
                principal=PrincipalInfo(
                    subject=principal.subject,
                    role=principal.role.value if principal.role else None,
                    expires_at=principal.expires_at,
                ),
                topics=allowed_topics(principal),
                ping_interval_s=settings.ping_interval_s,
                ping_timeout_s=settings.ping_timeout_s,
                max_frame_bytes=settings.max_frame_bytes,
            )
        )

    async def serve(
        self, client: Client, messages: AsyncIterator[str | bytes], token: str | None
    ) -> None:
        """Run one connection until the client leaves or is closed."""
        hub = self.hub
        hub.attach(client)
        try:
            if not await self._login(client, messages, token):
                return
            async for raw in messages:
                if client.closed:
                    break
                await self.handle(client, raw)
        finally:
            if not client.closed:
                # The peer left: forget it without trying to send a close.
                client.closed = True
                if client.expiry is not None:
                    client.expiry.cancel()
                hub.detach(client)

    async def _login(
        self, client: Client, messages: AsyncIterator[str | bytes], token: str | None
    ) -> bool:
        try:
            if token is not None:
                self.welcome(client, self.authenticate(token))
                return True
            if self.anonymous_read:
                self.welcome(client, Principal.anonymous_reader())
                return True
            deadline = time.monotonic() + self.hub.settings.auth_timeout_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AuthFailed(CloseCode.UNAUTHORIZED, "no auth message in time")
                try:
                    raw = await asyncio.wait_for(anext(messages), timeout=remaining)
                except TimeoutError:
                    raise AuthFailed(CloseCode.UNAUTHORIZED, "no auth message in time") from None
                except StopAsyncIteration:
                    return False
                message = self.parse(client, raw)
                if isinstance(message, AuthMessage):
                    self.welcome(client, self.authenticate(message.token))
                    return True
                if message is not None:
                    self.error(client, ErrorCode.NOT_AUTHENTICATED, "send auth first", None)
        except AuthFailed as exc:
            self.hub.stats.auth_failures += 1
            client.close(exc.code, exc.reason)
            return False

    def error(self, client: Client, code: ErrorCode, message: str, ref: str | None) -> None:
        self.hub.stats.protocol_errors += 1
        client.send_model(ErrorMessage(code=code, message=message[:300], ref=ref))

    def parse(
        self, client: Client, raw: str | bytes
    ) -> AuthMessage | SubscribeMessage | UnsubscribeMessage | PongMessage | PingMessage | None:
        """The message, or None after answering with an `error`."""
        if isinstance(raw, bytes):
            self.error(
                client, ErrorCode.BAD_JSON, "binary frames are not used; send JSON text", None
            )
            return None
        try:
            doc: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.error(client, ErrorCode.BAD_JSON, "not JSON", None)
            return None
        if not isinstance(doc, dict):
            self.error(client, ErrorCode.BAD_JSON, "a message is a JSON object", None)
            return None
        ref = doc.get("ref") if isinstance(doc.get("ref"), str) else None
        kind = doc.get("type")
        if not isinstance(kind, str) or kind not in CLIENT_TYPES:
            self.error(
                client,
                ErrorCode.UNKNOWN_TYPE,
                f"unknown type {kind!r}; expected one of {sorted(CLIENT_TYPES)}",
                ref,
            )
            return None
        if kind in ("subscribe", "unsubscribe"):
            unknown = _unknown_topics(doc.get("topics"))
            if unknown:
                self.error(
                    client,
                    ErrorCode.UNKNOWN_TOPIC,
                    f"unknown topic(s) {unknown}; topics are {[t.value for t in Topic]}",
                    ref,
                )
                return None
        try:
            return CLIENT_MESSAGE.validate_python(doc)
        except ValidationError as exc:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]
            )
            self.error(client, ErrorCode.INVALID, f"invalid {kind}: {detail}", ref)
            return None

    async def handle(self, client: Client, raw: str | bytes) -> None:
        message = self.parse(client, raw)
        if message is None:
            return
        if isinstance(message, PongMessage):
            client.ping_sent_at = None
        elif isinstance(message, PingMessage):
            client.send_model(ServerPongMessage(t=message.t))
        elif isinstance(message, SubscribeMessage):
            requests = message.requests()
            granted = client.principal.permissions if client.principal else frozenset()
            refused = [r.topic.value for r in requests if TOPIC_PERMISSIONS[r.topic] not in granted]
            if refused:
                needs = sorted({TOPIC_PERMISSIONS[Topic(t)].value for t in refused})
                self.error(
                    client,
                    ErrorCode.FORBIDDEN_TOPIC,
                    f"this role may not read {refused} (needs {', '.join(needs)})",
                    message.ref,
                )
                return
            for request in requests:
                if request.filter is None:
                    continue
                used = {k for k, v in request.filter if v is not None}
                bad = used - FILTER_FIELDS[request.topic]
                if bad:
                    self.error(
                        client,
                        ErrorCode.BAD_FILTER,
                        f"topic {request.topic.value} cannot filter on {sorted(bad)}",
                        message.ref,
                    )
                    return
            await self.hub.subscribe(client, requests, message.ref)
        elif isinstance(message, UnsubscribeMessage):
            self.hub.unsubscribe(client, message.topics)
            client.send_model(UnsubscribedMessage(ref=message.ref, topics=message.topics))
        else:
            try:
                principal = self.authenticate(message.token)
            except AuthFailed as exc:
                self.error(client, ErrorCode.BAD_TOKEN, exc.reason, None)
                return
            self.welcome(client, principal)


def _unknown_topics(topics: Any) -> list[str]:
    if not isinstance(topics, list):
        return []
    out: list[str] = []
    for item in topics:
        name = item.get("topic") if isinstance(item, dict) else item
        if isinstance(name, str) and name not in _TOPIC_VALUES:
            out.append(name[:40])
    return out

"""CAP URL feed: a URL answering a CAP document, a wrapper of alerts, NWS GeoJSON, or an ATOM
feed whose entries embed their CAP alert or link to it (links are followed, http(s) only).

Entry links already read are remembered (by entry id and updated time) so an unchanged ATOM
feed does not refetch every alert; a failed entry is retried the next cycle, and the feed's
own ETag is kept only when every entry was read, or a 304 would hide the failed one.
"""

from __future__ import annotations

import random
from typing import Any

import httpx

from eas_schemas.events import FeedKind
from pollers.cap_xml import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    AtomEntryLink,
    CapRejected,
    ParsedAlert,
    parse_cap_batch,
)
from pollers.feeds.base import Feed, FeedConfigError, FeedContext, FeedSpec, PollResult, spec_key
from pollers.feeds.conditional import Validators
from pollers.feeds.nws_api import nws_user_agent
from pollers.http_fetch import (
    RetryPolicy,
    Sleeper,
    UrlGuard,
    fetch_with_retries,
    make_client,
    real_sleep,
)
from pollers.nws_geojson import parse_nws_json
from servicekit.outbound import redact as redact_userinfo
from servicekit.outbound import strip_userinfo

FEED_ACCEPT = (
    "application/atom+xml, application/cap+xml, application/xml;q=0.9, text/xml;q=0.8, "
    "application/geo+json;q=0.7"
)
ENTRY_ACCEPT = (
    "application/cap+xml, application/xml;q=0.9, text/xml;q=0.8, application/geo+json;q=0.5"
)


def parse_document(
    body: bytes, max_bytes: int
) -> tuple[list[ParsedAlert], list[str], list[AtomEntryLink]]:
    """XML (CAP, wrapper, ATOM) or NWS GeoJSON, told apart by the first character."""
    if body.lstrip()[:1] in (b"{", b"["):
        geo = parse_nws_json(body, max_bytes=max_bytes)
        return geo.alerts, geo.rejections, []
    batch = parse_cap_batch(body, max_bytes=max_bytes)
    rejections = list(batch.rejections)
    if batch.kind == "wrapper" and not batch.alerts and not rejections and not batch.links:
        rejections.append(f"no CAP <alert> in document (root <{batch.root}>)")
    return batch.alerts, rejections, batch.links


class CapUrlFeed(Feed):
    kind = FeedKind.CAP_URL

    @classmethod
    def specs(cls, ctx: FeedContext) -> list[FeedSpec]:
        s = ctx.settings
        if not s.cap_urls:
            raise FeedConfigError("the CAP URL feed needs POLLERS_CAP_URLS")
        agent = nws_user_agent(s.nws_contact or "no contact configured")
        specs: list[FeedSpec] = []
        for url in s.cap_urls:
            kwargs: dict[str, Any] = {
                "interval_s": s.cap_url_interval_s,
                "max_document_bytes": s.max_document_bytes,
                "max_entries": s.cap_url_max_entries,
                "user_agent": agent,
                **ctx.http,
            }

            def make(sleep: Sleeper, url: str = url, kwargs: dict[str, Any] = kwargs) -> Feed:
                return cls(url, **kwargs, sleep=sleep)

            name = f"cap-url:{strip_userinfo(url)}"
            specs.append(FeedSpec(cls.kind, name, spec_key(cls.kind, name, **kwargs), make))
        return specs

    def __init__(
        self,
        url: str,
        *,
        interval_s: float = 60.0,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        max_response_bytes: int = 16 * 1_048_576,
        max_entries: int = 100,
        deadline_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 20.0,
        user_agent: str | None = None,
        policy: RetryPolicy | None = None,
        sleep: Sleeper = real_sleep,
        rng: random.Random | None = None,
        client: httpx.Client | None = None,
        allow_private_hosts: tuple[str, ...] = (),
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise FeedConfigError(f"CAP URL must be http(s), got {url!r}")
        self.url = url
        # The name is published (poller.status) and the URL may carry user:password@.
        self.shown = strip_userinfo(url)
        self.name = f"cap-url:{self.shown}"
        self.interval_s = interval_s
        self.max_document_bytes = max_document_bytes
        self.max_response_bytes = max_response_bytes
        self.max_entries = max_entries
        self.deadline_s = deadline_s
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.client = client or make_client(connect_timeout_s, read_timeout_s, user_agent)
        self.guard = UrlGuard(allow_private_hosts)
        self.validators = Validators()
        self._entries_read: set[tuple[str, str]] = set()

    def _get(
        self, url: str, accept: str, extra: dict[str, str] | None = None
    ) -> tuple[int | None, bytes, httpx.Headers | None, str | None, float | None]:
        outcome = fetch_with_retries(
            self.client,
            url,
            headers={"Accept": accept, **(extra or {})},
            max_bytes=self.max_response_bytes,
            deadline_s=self.deadline_s,
            policy=self.policy,
            sleep=self.sleep,
            rng=self.rng,
            guard=self.guard,
        )
        if outcome.result is None:
            return None, b"", None, outcome.error, outcome.retry_after_s
        r = outcome.result
        return r.status, r.body, r.headers, None, outcome.retry_after_s

    def poll(self) -> PollResult:
        result = PollResult()
        status, body, headers, error, retry_after = self._get(
            self.url, FEED_ACCEPT, self.validators.request_headers(self.url)
        )
        result.retry_after_s = retry_after
        if status is None or headers is None:
            result.errors.append(f"{self.shown}: {error}")
            return result
        if status == 304:
            result.not_modified = True
            return result
        if status != 200:
            result.errors.append(f"{self.shown}: HTTP {status}")
            return result
        result.documents = 1
        try:
            alerts, rejections, links = parse_document(body, self.max_response_bytes)
        except CapRejected as exc:
            result.rejections.append(f"{self.shown}: {exc.reason}")
            return result
        result.alerts.extend(alerts)
        result.rejections.extend(rejections)
        entries_ok = self._read_entries(links, result)
        current = {(link.entry_id, link.updated) for link in links}
        validators = Validators.from_response(headers)

        def commit() -> None:
            # Entries that left the feed are forgotten so the set stays the feed's size.
            self._entries_read = (self._entries_read | entries_ok) & current
            if current <= self._entries_read:
                self.validators.save(self.url, validators)
            else:
                self.validators.forget(self.url)

        result.commit = commit
        return result

    def _read_entries(self, links: list[AtomEntryLink], result: PollResult) -> set[tuple[str, str]]:
        done: set[tuple[str, str]] = set()
        todo = [link for link in links if (link.entry_id, link.updated) not in self._entries_read]
        if len(todo) > self.max_entries:
            result.errors.append(
                f"{self.shown}: {len(todo)} new ATOM entries, reading the first {self.max_entries}"
            )
            todo = todo[: self.max_entries]
        for link in todo:
            key = (link.entry_id, link.updated)
            if not link.url.startswith(("http://", "https://")):
                result.rejections.append(
                    f"ATOM entry {link.entry_id}: link {link.url!r} is not http(s)"
                )
                done.add(key)
                continue
            status, body, _headers, error, _ = self._get(link.url, ENTRY_ACCEPT)
            if status is None:
                result.errors.append(f"{link.url}: {error}")
                continue
            if status != 200:
                result.errors.append(f"{link.url}: HTTP {status}")
                continue
            result.documents += 1
            try:
                alerts, rejections, _links = parse_document(body, self.max_document_bytes)
            except CapRejected as exc:
                result.rejections.append(f"{link.url}: {exc.reason}")
            else:
                result.alerts.extend(alerts)
                result.rejections.extend(f"{link.url}: {r}" for r in rejections)
            done.add(key)
        return done

    def redact(self, text: str) -> str:
        return redact_userinfo(text)

    def close(self) -> None:
        self.client.close()

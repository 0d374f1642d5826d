"""NWS API feed: ``GET {base}/alerts/active?zone=...`` / ``?area=...`` as GeoJSON.

The API asks every client for a User-Agent that identifies it and carries a contact, so the
feed refuses to be built without one. ``zone`` and ``area`` cannot be combined in one request,
so each configured kind is its own request with its own validators.
"""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from eas_schemas.cap import CapAlert
from eas_schemas.events import FeedKind
from pollers import __version__
from pollers.cap_xml import CapRejected, parse_cap_alert
from pollers.feeds.base import Feed, FeedConfigError, FeedContext, FeedSpec, PollResult, spec_key
from pollers.feeds.conditional import Validators
from pollers.http_fetch import (
    BlockedUrl,
    ResponseTooLarge,
    RetryPolicy,
    Sleeper,
    UrlGuard,
    fetch_with_retries,
    get_bounded,
    make_client,
    real_sleep,
)
from pollers.nws_geojson import parse_nws_json

log = logging.getLogger(__name__)

DEFAULT_NWS_BASE_URL = "https://api.weather.gov"
CAP_XML_MAX_BYTES = 1_048_576


class CapXmlFetcher:
    """The CAP XML the NWS API serves per alert (``GET {base}/alerts/{id}``, Accept
    ``application/cap+xml``), for the alerts whose JSON is unusable.

    Bounded: at most ``per_poll`` requests in one poll, one attempt each, 1 MiB, the feed's
    deadline. Rate-limited: ``min_interval_s`` between two requests (NWS asks clients not to
    burst). Cached: an alert's CAP XML never changes (an Update is a new identifier), so a
    good answer is kept (``cache_size``, least recently used dropped); a failure is kept for
    ``retry_after_s`` so a broken alert is not asked for on every poll.
    """

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        user_agent: str,
        guard: UrlGuard,
        sleep: Sleeper,
        *,
        deadline_s: float = 20.0,
        per_poll: int = 10,
        min_interval_s: float = 1.0,
        cache_size: int = 256,
        retry_after_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.user_agent = user_agent
        self.guard = guard
        self.sleep = sleep
        self.deadline_s = deadline_s
        self.per_poll = per_poll
        self.min_interval_s = min_interval_s
        self.cache_size = cache_size
        self.retry_after_s = retry_after_s
        self.clock = clock
        self._good: OrderedDict[str, CapAlert] = OrderedDict()
        self._failed: dict[str, float] = {}
        self._last: float | None = None
        self.budget = per_poll
        self.requests = 0

    def new_poll(self) -> None:
        self.budget = self.per_poll

    def __call__(self, identifier: str) -> CapAlert | None:
        if identifier in self._good:
            self._good.move_to_end(identifier)
            return self._good[identifier]
        now = self.clock()
        failed_at = self._failed.get(identifier)
        if failed_at is not None and now - failed_at < self.retry_after_s:
            return None
        if self.budget <= 0:
            log.info("CAP XML of %s not fetched: %d per poll already", identifier, self.per_poll)
            return None
        wait = self.min_interval_s - (now - self._last) if self._last is not None else 0.0
        if wait > 0 and self.sleep(wait):
            return None  # the poller is stopping
        self.budget -= 1
        self.requests += 1
        self._last = self.clock()
        alert = self._fetch(identifier)
        if alert is None:
            self._remember_failure(identifier)
            return None
        self._failed.pop(identifier, None)
        self._good[identifier] = alert
        while len(self._good) > self.cache_size:
            self._good.popitem(last=False)
        return alert

    def _remember_failure(self, identifier: str) -> None:
        now = self.clock()
        if len(self._failed) >= self.cache_size:
            # Bounded like the good answers: failures older than the hold-off are forgotten
            # first, then the oldest.
            self._failed = {k: t for k, t in self._failed.items() if now - t < self.retry_after_s}
            while len(self._failed) >= self.cache_size:
                del self._failed[next(iter(self._failed))]
        self._failed[identifier] = now

    def _fetch(self, identifier: str) -> CapAlert | None:
        url = f"{self.base_url}/alerts/{quote(identifier, safe=':.-_')}"
        headers = {"Accept": "application/cap+xml", "User-Agent": self.user_agent}
        try:
            result = get_bounded(
                self.client,
                url,
                headers=headers,
                max_bytes=CAP_XML_MAX_BYTES,
                deadline_s=self.deadline_s,
                guard=self.guard,
            )
        except (httpx.HTTPError, ResponseTooLarge, BlockedUrl) as exc:
            log.warning("CAP XML of %s: %s", identifier, exc)
            return None
        if result.status != 200:
            log.warning("CAP XML of %s: HTTP %d", identifier, result.status)
            return None
        try:
            return parse_cap_alert(result.body, CAP_XML_MAX_BYTES)
        except CapRejected as exc:
            log.warning("CAP XML of %s: %s", identifier, exc.reason)
            return None


def nws_user_agent(contact: str) -> str:
    return f"eas-station-pollers/{__version__} ({contact.strip()})"


class NwsApiFeed(Feed):
    kind = FeedKind.NWS

    @classmethod
    def specs(cls, ctx: FeedContext) -> list[FeedSpec]:
        s = ctx.settings
        nws: dict[str, Any] = {
            "contact": s.nws_contact,
            "zones": list(s.nws_zones),
            "areas": list(s.nws_areas),
            "base_url": s.nws_base_url,
            "interval_s": s.nws_interval_s,
            "cap_xml_per_poll": s.nws_cap_xml_per_poll,
            "cap_xml_min_interval_s": s.nws_cap_xml_interval_s,
            **ctx.http,
        }

        def make(sleep: Sleeper) -> Feed:
            return cls(**nws, sleep=sleep)

        return [FeedSpec(cls.kind, "nws", spec_key(cls.kind, "nws", **nws), make)]

    def __init__(
        self,
        *,
        contact: str,
        zones: Sequence[str] = (),
        areas: Sequence[str] = (),
        base_url: str = DEFAULT_NWS_BASE_URL,
        interval_s: float = 60.0,
        max_response_bytes: int = 16 * 1_048_576,
        deadline_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 20.0,
        policy: RetryPolicy | None = None,
        sleep: Sleeper = real_sleep,
        rng: random.Random | None = None,
        client: httpx.Client | None = None,
        allow_private_hosts: tuple[str, ...] = (),
        name: str = "nws",
        cap_xml_per_poll: int = 10,
        cap_xml_min_interval_s: float = 1.0,
    ) -> None:
        if not contact or not contact.strip():
            raise FeedConfigError(
                "the NWS API requires a contact in the User-Agent: set POLLERS_NWS_CONTACT "
                "(an e-mail address or URL where NWS can reach the station operator)"
            )
        zones = [z.strip().upper() for z in zones if z.strip()]
        areas = [a.strip().upper() for a in areas if a.strip()]
        if not zones and not areas:
            raise FeedConfigError(
                "the NWS feed needs POLLERS_NWS_ZONES (e.g. OHZ014,OHC035) or "
                "POLLERS_NWS_AREAS (e.g. OH); polling every alert in the country is not a default"
            )
        self.name = name
        self.interval_s = interval_s
        self.url = base_url.rstrip("/") + "/alerts/active"
        self.queries: list[dict[str, str]] = []
        if zones:
            self.queries.append({"zone": ",".join(zones)})
        if areas:
            self.queries.append({"area": ",".join(areas)})
        self.user_agent = nws_user_agent(contact)
        self.max_response_bytes = max_response_bytes
        self.deadline_s = deadline_s
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.client = client or make_client(connect_timeout_s, read_timeout_s, self.user_agent)
        self.guard = UrlGuard(allow_private_hosts)
        self.validators = Validators()
        self.cap_xml = CapXmlFetcher(
            self.client,
            base_url,
            self.user_agent,
            self.guard,
            sleep,
            deadline_s=min(deadline_s, read_timeout_s),
            per_poll=cap_xml_per_poll,
            min_interval_s=cap_xml_min_interval_s,
        )

    def poll(self) -> PollResult:
        result = PollResult()
        self.cap_xml.new_poll()
        pending: dict[str, tuple[str | None, str | None]] = {}
        unchanged = 0
        for params in self.queries:
            key = urlencode(params)
            headers = {
                "Accept": "application/geo+json",
                "User-Agent": self.user_agent,
                **self.validators.request_headers(key),
            }
            outcome = fetch_with_retries(
                self.client,
                self.url,
                params=params,
                headers=headers,
                max_bytes=self.max_response_bytes,
                deadline_s=self.deadline_s,
                policy=self.policy,
                sleep=self.sleep,
                rng=self.rng,
                guard=self.guard,
            )
            if outcome.retry_after_s is not None:
                result.retry_after_s = max(result.retry_after_s or 0.0, outcome.retry_after_s)
            response = outcome.result
            if response is None:
                result.errors.append(f"{key}: {outcome.error} after {outcome.attempts} attempt(s)")
                continue
            if response.status == 304:
                unchanged += 1
                continue
            if response.status != 200:
                result.errors.append(f"{key}: HTTP {response.status}")
                continue
            result.documents += 1
            try:
                batch = parse_nws_json(
                    response.body, max_bytes=self.max_response_bytes, cap_xml=self.cap_xml
                )
            except CapRejected as exc:
                # A broken collection is a feed error, not a rejection: nothing of it was
                # read, so its ETag must not be kept and the next poll fetches it again.
                result.errors.append(f"{key}: {exc.reason}")
                continue
            result.alerts.extend(batch.alerts)
            result.rejections.extend(f"{key}: {reason}" for reason in batch.rejections)
            pending[key] = Validators.from_response(response.headers)
        result.not_modified = unchanged == len(self.queries)

        def commit() -> None:
            for key, validators in pending.items():
                self.validators.save(key, validators)

        result.commit = commit
        return result

    def close(self) -> None:
        self.client.close()

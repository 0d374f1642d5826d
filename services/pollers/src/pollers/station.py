"""The pollers' view of the station's settings document: which feeds, with what settings.

Precedence (see docs/settings-propagation.md): the environment (`PollersSettings`) is the
default; a part of the document that was configured (differs from its built-in default) wins:

- ``feeds.nws``: zones, areas, contact and interval come from the document, and the feed runs
  exactly when ``enabled`` is true there;
- ``feeds.ipaws``: URL and interval from the document, runs when ``enabled``; the PIN is a
  secret, never in the Redis document, so it stays the environment's ``POLLERS_IPAWS_PIN``;
- ``feeds.cap_folders``: a non-empty list replaces ``POLLERS_CAP_FOLDER`` and runs the feed.

What the document does not describe (NWS base URL, CAP URLs, HTTP limits, recursion, ...) is
always the environment's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eas_schemas.events import FeedKind
from eas_schemas.station_settings import StationSettings
from pollers.settings import POLLED_KINDS, PollersSettings
from servicekit.settings_follower import configured


def effective_settings(
    env: PollersSettings, station: StationSettings | None
) -> tuple[PollersSettings, list[FeedKind]]:
    """The settings to build feeds from, and the feeds to run, in a stable order."""
    kinds = env.enabled_feeds()
    if station is None:
        return env, kinds
    feeds = station.feeds
    update: dict[str, Any] = {}
    decided: dict[FeedKind, bool] = {}
    if configured(feeds.nws):
        update.update(
            nws_zones=[str(z) for z in feeds.nws.zones],
            nws_areas=list(feeds.nws.areas),
            nws_contact=feeds.nws.contact or env.nws_contact,
            nws_interval_s=float(feeds.nws.poll_interval_s),
        )
        decided[FeedKind.NWS] = feeds.nws.enabled
    if configured(feeds.ipaws):
        url = feeds.ipaws.url
        update.update(
            ipaws_url=str(url).rstrip("/") if url is not None else "",
            ipaws_interval_s=float(feeds.ipaws.interval_s),
        )
        decided[FeedKind.IPAWS] = feeds.ipaws.enabled
    if feeds.cap_folders:
        update["cap_folder"] = [Path(f) for f in feeds.cap_folders]
        decided[FeedKind.CAP_FOLDER] = True
    # model_copy does not validate: every value above was validated by the document's model.
    effective = env.model_copy(update=update)
    wanted = {k for k in kinds if decided.get(k, True)} | {k for k, on in decided.items() if on}
    return effective, [k for k in POLLED_KINDS if k in wanted]

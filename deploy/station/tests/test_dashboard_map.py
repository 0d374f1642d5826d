"""The map's state table (map.js) is the schemas' one, and the page never loads it from afar."""

from __future__ import annotations

import re

from eas_schemas.same_codes import STATE_FIPS
from eas_station.dashboard import STATIC, DashboardConfig, render_index

MAP_JS = STATIC / "map.js"


def test_map_state_table_equals_the_schemas_table() -> None:
    text = MAP_JS.read_text(encoding="utf-8")
    block = re.search(r"export const STATE_FIPS = \{(.*?)\};", text, re.S)
    assert block, "STATE_FIPS not found in map.js"
    table = {abbr: fips for abbr, fips in re.findall(r'([A-Z]{2}): "(\d{2})"', block.group(1))}
    assert table == {abbr: fips for fips, abbr in STATE_FIPS.items()}


def test_map_loads_only_from_the_station() -> None:
    text = MAP_JS.read_text(encoding="utf-8")
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)
    assert 'const VENDOR = "/static/vendor";' in text
    page = render_index(DashboardConfig())
    assert 'data-view="map"' in page and 'id="map-wall"' in page


async def test_only_versioned_static_files_are_cached_for_long() -> None:
    import httpx

    from eas_station.dashboard import asset_version, create_dashboard

    transport = httpx.ASGITransport(app=create_dashboard())
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        linked = await client.get(f"/static/app.js?v={asset_version()}")
        assert linked.status_code == 200
        assert linked.headers["cache-control"] == "public, max-age=86400"
        # What app.js imports carries no version: revalidated, so never stale after an upgrade.
        imported = await client.get("/static/map.js")
        assert imported.headers["cache-control"] == "no-cache"
        etag = imported.headers["etag"]
        again = await client.get("/static/map.js", headers={"if-none-match": etag})
        assert again.status_code == 304
        stale = await client.get("/static/app.js?v=000000000000")
        assert stale.headers["cache-control"] == "no-cache"

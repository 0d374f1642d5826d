"""The dashboard's /ws client (``static/live.js``) in headless Chromium, against a scripted fake
WebSocket: resume ids, history windows, pings, backoff, auth failures.

The end-to-end test (``test_dashboard_browser.py``) shows the pieces work together against the
real broadcaster; this one pins the protocol details that test cannot provoke on demand.
Needs Debian's Chromium at /usr/bin/chromium; fails (does not skip) without it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import eas_station.dashboard as dashboard

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# A WebSocket stand-in: records what the client sends; the test drives open/message/close.
FAKE = """
window.sockets = [];
window.states = [];
class FakeWebSocket {
  static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
  constructor(url) {
    this.url = url; this.sent = []; this.readyState = 1; window.sockets.push(this);
  }
  send(text) { this.sent.push(JSON.parse(text)); }
  close(code, reason) { this.readyState = 3; }
  serverSends(doc) { this.onmessage({ data: JSON.stringify(doc) }); }
  serverCloses(code, reason = "") { this.readyState = 3; this.onclose({ code, reason }); }
}
window.WebSocket = FakeWebSocket;
window.sleep = (ms) => new Promise((r) => setTimeout(r, ms));
window.welcome = { type: "welcome", protocol: 1, server: "ws-broadcaster/t",
  principal: { subject: "alice", role: "viewer", expires_at: null },
  // What the server grants a viewer: every topic but settings.
  topics: ["alerts", "same", "monitor", "levels", "pollers", "health", "relay", "playout"],
  ping_interval_s: 20, ping_timeout_s: 20, max_frame_bytes: 65536 };
"""


@contextmanager
def module_page(module: str, name: str, before: str | None = None) -> Iterator[Any]:
    """A blank page in headless Chromium with the dashboard's ``static/<module>`` imported as
    ``window.<name>`` (``before`` runs first: the stand-ins the module will find)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install -y chromium")
    source = (dashboard.STATIC / module).read_text()
    url = "data:text/javascript;base64," + base64.b64encode(source.encode()).decode()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto("about:blank")
        if before:
            page.evaluate(before)
        page.evaluate(f"import('{url}').then((m) => {{ window.{name} = m; }})")
        page.wait_for_function(f"window.{name} !== undefined")
        yield page
        browser.close()


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    with module_page("live.js", "live", FAKE) as page:
        yield page


def run(page: Any, script: str) -> Any:
    page.evaluate(FAKE)
    return page.evaluate(f"(async () => {{ {script} }})()")


def test_ids_and_backoff(page: Any) -> None:
    result = run(
        page,
        """
        const { compareIds, backoffDelay } = window.live;
        const delays = [0, 1, 2, 3, 10, 40].map((n) => [
          backoffDelay(n, 500, 30000, () => 0), backoffDelay(n, 500, 30000, () => 0.999999)]);
        return {
          order: [compareIds("9-0", "10-0"), compareIds("10-1", "10-0"), compareIds("5-5", "5-5"),
                  compareIds("1718000000000-10", "1718000000000-9")],
          delays,
        };
        """,
    )
    assert result["order"] == [-1, 1, 0, 1]
    # Exponential from 0.5 s, capped at 30 s, jittered within [base/2, base].
    assert result["delays"] == [
        [250, 500],
        [500, 1000],
        [1000, 2000],
        [2000, 4000],
        [15000, 30000],
        [15000, 30000],
    ]


def test_first_subscribe_reconnect_and_resume(page: Any) -> None:
    result = run(
        page,
        """
        const conn = new window.live.LiveConnection({
          url: "ws://station/ws",
          topics: ["alerts", "health", "levels", "same"],
          history: { same: 60000 },
          onState: (s, d) => window.states.push([s, d.delayMs ?? null]),
          onEvent: () => {},
        });
        const before = Date.now();
        conn.start();
        const first = window.sockets[0];
        first.serverSends(window.welcome);
        const sub1 = first.sent[0];
        // Positions from `subscribed`, then events past them.
        first.serverSends({ type: "subscribed", topic: "alerts", replayed: 0,
          last_ids: { "alert.events": "100-0" } });
        first.serverSends({ type: "subscribed", topic: "health", replayed: 0,
          last_ids: { "service.heartbeat": "50-0", "system.alarm": "0-0" } });
        first.serverSends({ type: "event", topic: "alerts", stream: "alert.events", id: "105-2",
          envelope: { type: "alert.created", data: {} } });
        first.serverSends({ type: "event", topic: "health", stream: "service.heartbeat",
          id: "60-0", envelope: { type: "service.heartbeat", data: {} } });
        first.serverSends({ type: "event", topic: "levels", stream: "audio.metrics",
          id: "61-0", envelope: { type: "audio.input_level", data: {} } });
        // An older id (a replay racing a live event) never moves the position back.
        first.serverSends({ type: "event", topic: "alerts", stream: "alert.events", id: "101-0",
          envelope: { type: "alert.updated", data: {} } });
        first.serverSends({ type: "ping", t: 42 });
        const pong = first.sent[first.sent.length - 1];
        first.serverCloses(1001, "server shutting down");
        const stateAfterClose = window.states[window.states.length - 1];
        await window.sleep(700);
        const second = window.sockets[1];
        second.serverSends(window.welcome);
        const sub2 = second.sent[0];
        conn.stop();
        return { sub1, sub2, pong, stateAfterClose, before, sockets: window.sockets.length,
                 states: window.states.map((s) => s[0]) };
        """,
    )
    sub1 = result["sub1"]
    assert sub1["type"] == "subscribe"
    topics = {(t if isinstance(t, str) else t["topic"]): t for t in sub1["topics"]}
    assert topics["alerts"] == "alerts" and topics["health"] == "health"
    assert topics["levels"] == "levels"
    # A history window becomes a last_id made from the clock.
    ms = int(topics["same"]["last_id"].split("-")[0])
    assert result["before"] - 60000 - 5 <= ms <= result["before"] - 60000 + 5000
    assert result["pong"] == {"type": "pong", "t": 42}
    assert result["stateAfterClose"][0] == "reconnecting"
    assert 250 <= result["stateAfterClose"][1] <= 500
    assert result["sockets"] == 2
    # The reconnect resumes every resumable topic from the last id seen, per stream.
    sub2 = {(t if isinstance(t, str) else t["topic"]): t for t in result["sub2"]["topics"]}
    assert sub2["alerts"] == {"topic": "alerts", "last_id": "105-2"}
    assert sub2["health"] == {
        "topic": "health",
        "last_id": {"service.heartbeat": "60-0", "system.alarm": "0-0"},
    }
    assert sub2["levels"] == "levels"  # latest-value: never resumed
    assert sub2["same"]["topic"] == "same"  # still only its first window (nothing seen)
    assert result["states"][:3] == ["connecting", "live", "reconnecting"]
    assert result["states"][-2:] == ["live", "offline"]


def test_resync_and_forbidden_and_unauthorized(page: Any) -> None:
    result = run(
        page,
        """
        const resyncs = [];
        let authCalls = 0;
        const conn = new window.live.LiveConnection({
          url: "ws://station/ws", topics: ["alerts"], history: { alerts: 600000 },
          onState: (s, d) => window.states.push([s, d.reason || null]),
          onResync: (topic, msg, windowMs) => resyncs.push([topic, msg.reason, windowMs]),
          onAuthFailure: async () => { authCalls += 1; return authCalls === 1; },
        });
        conn.start();
        window.sockets[0].serverSends(window.welcome);
        window.sockets[0].serverSends({ type: "resync_required", topic: "alerts",
          stream: "alert.events", reason: "unknown_id", last_id: "1-0", first_id: null });
        // 4401: the page refreshes its session (first time: yes) and reconnects at once.
        window.sockets[0].serverCloses(4401, "token expired");
        await window.sleep(50);
        const afterFirst401 = window.sockets.length;
        window.sockets[1].serverSends(window.welcome);
        window.sockets[1].serverCloses(4401, "token expired");
        await window.sleep(50);
        const afterSecond401 = window.sockets.length;
        const stateAfterSecond = window.states[window.states.length - 1];
        // 4403: never retried.
        conn.stopped = false;
        conn.reconnectNow();
        const third = window.sockets[window.sockets.length - 1];
        third.serverSends(window.welcome);
        third.serverCloses(4403, "forbidden");
        await window.sleep(700);
        return { resyncs, afterFirst401, afterSecond401, stateAfterSecond, authCalls,
                 sockets: window.sockets.length, last: window.states[window.states.length - 1] };
        """,
    )
    assert result["resyncs"] == [["alerts", "unknown_id", 600000]]
    assert result["afterFirst401"] == 2  # refreshed: reconnected without waiting
    assert result["afterSecond401"] == 2  # refresh refused: stopped, login shown
    assert result["stateAfterSecond"][0] == "offline"
    assert result["authCalls"] == 2
    assert result["sockets"] == 3  # no retry after 4403
    assert result["last"][0] == "offline"


def test_subscribes_only_to_the_topics_the_welcome_grants(page: Any) -> None:
    """The server refuses a whole subscribe that names one forbidden topic: a viewer (or an
    anonymous reader) asking for settings too would get no live event at all."""
    result = run(
        page,
        """
        const conn = new window.live.LiveConnection({
          url: "ws://station/ws", topics: ["alerts", "settings", "health"], history: {},
          onState: () => {},
        });
        conn.start();
        window.sockets[0].serverSends(window.welcome);
        return window.sockets[0].sent;
        """,
    )
    [subscribe] = [m for m in result if m["type"] == "subscribe"]
    assert subscribe["topics"] == ["alerts", "health"]

// The /ws protocol client (docs/ws-protocol.md): connect, authenticate by cookie, subscribe,
// answer pings, remember the last stream entry id per topic and stream, and reconnect with
// exponential backoff and jitter, resuming from those ids so nothing is missed.
// No DOM here: the page gives callbacks.

export const TOPIC_STREAMS = {
  alerts: ["alert.events"],
  same: ["same.events"],
  monitor: ["monitor.status"],
  levels: ["audio.metrics"],
  pollers: ["poller.status"],
  health: ["service.heartbeat", "system.alarm"],
  settings: ["settings.changed"],
  relay: ["relay.decisions"],
  playout: ["playout.events"],
};

// Latest-value topics are never resumed (the server ignores last_id for them).
const NO_RESUME = new Set(["levels"]);

export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  TOO_SLOW: 4008,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  PONG_TIMEOUT: 4408,
};

function parseId(id) {
  const [ms, seq] = String(id).split("-");
  return [Number(ms) || 0, Number(seq) || 0];
}

/** -1, 0 or 1 as stream entry id a is before, equal to or after b. */
export function compareIds(a, b) {
  const [am, as] = parseId(a);
  const [bm, bs] = parseId(b);
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}

/** Delay before reconnect attempt `attempt` (0-based): exponential, capped, "equal jitter". */
export function backoffDelay(attempt, minMs = 500, maxMs = 30000, random = Math.random) {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 16));
  return Math.round(base / 2 + random() * (base / 2));
}

export class LiveConnection {
  /**
   * @param {object} options
   *   url: ws URL; topics: topic names; history: {topic: ms} — on the very first subscribe,
   *   replay that much recent history (the server needs an id; one made from the clock is fine);
   *   onEvent(msg), onResync(topic, msg), onSubscribed(topic, msg), onWelcome(msg),
   *   onState(state, detail), onAuthFailure(code): return a Promise<boolean> (true = retry now).
   */
  constructor(options) {
    this.url = options.url;
    this.topics = options.topics;
    this.history = options.history || {};
    this.cb = options;
    this.lastIds = {}; // topic -> {stream -> id}
    this.ws = null;
    this.attempt = 0;
    this.state = "idle";
    this.timer = null;
    this.staleTimer = null;
    this.stopped = true;
    this.pingWindowMs = 60000;
    this.historyWindow = {}; // topic -> window (ms) of the pending first subscribe
    this.refCounter = 0;
    this._online = () => this.reconnectNow();
    this._offline = () => { if (this.state !== "live") this._setState("offline", { reason: "This device is offline." }); };
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this._online);
    window.addEventListener("offline", this._offline);
    this._connect();
  }

  stop(reason) {
    this.stopped = true;
    window.removeEventListener("online", this._online);
    window.removeEventListener("offline", this._offline);
    clearTimeout(this.timer);
    clearTimeout(this.staleTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try { ws.close(CLOSE.NORMAL, "bye"); } catch (_) { /* already closed */ }
    }
    this._setState("offline", { reason: reason || "Stopped." });
  }

  /** Forget what was seen (after signing out, say). */
  reset() {
    this.lastIds = {};
  }

  reconnectNow() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    this.attempt = 0;
    this._connect();
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  _setState(state, detail = {}) {
    this.state = state;
    if (this.cb.onState) this.cb.onState(state, detail);
  }

  _connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    if (navigator.onLine === false) {
      this._setState("offline", { reason: "This device is offline." });
      return;
    }
    this._setState(this.attempt === 0 ? "connecting" : "reconnecting", { attempt: this.attempt });
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this._scheduleReconnect(`could not open: ${err}`);
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => this._onMessage(ws, ev);
    ws.onclose = (ev) => this._onClose(ws, ev);
    ws.onerror = () => { /* onclose follows with the code */ };
    this._armStale(15000); // the welcome must come soon
  }

  _armStale(ms) {
    clearTimeout(this.staleTimer);
    this.staleTimer = setTimeout(() => {
      // No server message (not even its ping) for too long: the connection is dead.
      if (this.ws) {
        try { this.ws.close(CLOSE.NORMAL, "no ping from server"); } catch (_) { /* ignore */ }
        this._onClose(this.ws, { code: 1006, reason: "no message from the server" });
      }
    }, ms);
  }

  _onMessage(ws, ev) {
    if (ws !== this.ws) return;
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch (_) {
      return;
    }
    this._armStale(this.pingWindowMs);
    switch (msg.type) {
      case "welcome": {
        const wasLive = this.state === "live";
        this.pingWindowMs = ((msg.ping_interval_s || 20) + (msg.ping_timeout_s || 20) + 5) * 1000;
        this._armStale(this.pingWindowMs);
        this.attempt = 0;
        this._setState("live", { principal: msg.principal, server: msg.server });
        if (this.cb.onWelcome) this.cb.onWelcome(msg);
        // Only what this principal may read (the welcome lists it): the server refuses a
        // whole subscribe that names one topic more (an anonymous reader and "settings").
        const granted = Array.isArray(msg.topics) ? new Set(msg.topics) : null;
        if (!wasLive) this._subscribe(this.topics.filter((t) => !granted || granted.has(t)));
        break;
      }
      case "event": {
        this._remember(msg.topic, msg.stream, msg.id);
        if (this.cb.onEvent) this.cb.onEvent(msg);
        break;
      }
      case "subscribed": {
        for (const [stream, id] of Object.entries(msg.last_ids || {})) {
          this._remember(msg.topic, stream, id);
        }
        if (this.cb.onSubscribed) this.cb.onSubscribed(msg.topic, msg);
        break;
      }
      case "resync_required": {
        if (this.cb.onResync) this.cb.onResync(msg.topic, msg, this.historyWindow[msg.topic] || 0);
        break;
      }
      case "ping":
        this.send(msg.t === undefined ? { type: "pong" } : { type: "pong", t: msg.t });
        break;
      case "pong":
        break;
      case "error":
        console.warn("ws error", msg.code, msg.message);
        break;
      default:
        break;
    }
  }

  _remember(topic, stream, id) {
    if (!topic || !stream || !id) return;
    const ids = (this.lastIds[topic] ||= {});
    if (!ids[stream] || compareIds(id, ids[stream]) > 0) ids[stream] = id;
  }

  /** Ask for `topics` again, each from the last id seen (or a window of history the first time). */
  _subscribe(topics, windows = {}) {
    const requests = topics.map((topic) => {
      if (NO_RESUME.has(topic)) return topic;
      const ids = this.lastIds[topic];
      const streams = TOPIC_STREAMS[topic] || [];
      if (ids && streams.every((s) => ids[s])) {
        this.historyWindow[topic] = 0;
        return {
          topic,
          last_id: streams.length === 1 ? ids[streams[0]] : { ...ids },
        };
      }
      const windowMs = windows[topic] ?? this.history[topic];
      if (windowMs) {
        this.historyWindow[topic] = windowMs;
        return { topic, last_id: `${Math.max(0, Date.now() - windowMs)}-0` };
      }
      this.historyWindow[topic] = 0;
      return topic;
    });
    this.refCounter += 1;
    this.send({ type: "subscribe", ref: `s${this.refCounter}`, topics: requests });
  }

  /** Replay a topic again from `windowMs` ago (after a first window that was too long). */
  resubscribe(topic, windowMs) {
    if (this.lastIds[topic]) delete this.lastIds[topic];
    this._subscribe([topic], { [topic]: windowMs });
  }

  _onClose(ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearTimeout(this.staleTimer);
    if (this.stopped) return;
    const code = ev.code;
    if (code === CLOSE.FORBIDDEN) {
      this.stopped = true;
      this._setState("offline", { reason: "This account may not read the live view.", code });
      return;
    }
    if (code === CLOSE.UNAUTHORIZED) {
      this._setState("reconnecting", { reason: "Signed out", code, delayMs: null });
      const retry = this.cb.onAuthFailure ? this.cb.onAuthFailure(code) : Promise.resolve(false);
      Promise.resolve(retry).then((ok) => {
        if (ok) this.reconnectNow();
        else this.stop("Sign in to see the live view.");
      });
      return;
    }
    this._scheduleReconnect(ev.reason || `closed (${code})`, code);
  }

  _scheduleReconnect(reason, code) {
    const delayMs = backoffDelay(this.attempt);
    this.attempt += 1;
    const retryAt = Date.now() + delayMs;
    this._setState("reconnecting", { reason, code, delayMs, retryAt });
    this.timer = setTimeout(() => this._connect(), delayMs);
  }
}

// EAS Station dashboard. State comes from one REST fetch of the active alerts at load and from
// /ws (replay, then live events). Nothing here polls the server on a timer: the one interval
// below only redraws clocks and countdowns from data already in the page.

import { createConsole } from "./console.js";
import { staleHealthKeys } from "./health.js";
import { LiveConnection, compareIds } from "./live.js";
import { createAlertMap } from "./map.js";
import { createSettings } from "./settings.js";
import {
  SEVERITY_RANK, ago, clear, cookie, countdown, formatClock, formatDateTime, formatDuration,
  h, setTimeZone, severityClass, tick, timeZone,
} from "./ui.js";

const $ = (id) => document.getElementById(id);
const body = document.body;
const config = {
  login: body.dataset.login === "true",
  anonymous: body.dataset.anonymous === "true",
  live: body.dataset.live !== "false",
};
const params = new URLSearchParams(location.search);
const wall = params.get("wall") === "1";

const MINUTE = 60 * 1000;
const HISTORY = { alerts: 10 * MINUTE, same: 24 * 60 * MINUTE, monitor: 24 * 60 * MINUTE, pollers: 30 * MINUTE, health: 2 * MINUTE };
const SAME_KEEP = 50;

const state = {
  alerts: new Map(), // alert id -> alert (summary from events, merged over REST items)
  alertsLoading: false,
  alertQueue: [],
  fresh: new Set(), // alert ids to highlight once
  same: [], // newest first: {id, type, data, time}
  sameIds: new Set(),
  monitors: new Map(), // input key -> {status, statusId, level, levelId}
  pollers: new Map(), // feed -> {data, id, time}
  health: new Map(), // service/instance -> {hb, id, time, alarm}
  principal: null,
  conn: { state: "connecting", detail: {} },
  live: null,
  // Topics whose first replay is done: only what happens after that is announced aloud.
  subscribed: new Set(),
};

// ---- REST ------------------------------------------------------------------------------------

let refreshing = null;

/** Trade the refresh cookie for a new session (once at a time); true when it worked. */
function refreshSession() {
  if (!config.login || !cookie("eas_csrf")) return Promise.resolve(false);
  refreshing ||= rawApi("/api/auth/refresh", { method: "POST" })
    .then((r) => r.ok)
    .finally(() => { refreshing = null; });
  return refreshing;
}

async function api(path, options = {}) {
  const r = await rawApi(path, options);
  if (r.status === 401 && !path.startsWith("/api/auth/") && (await refreshSession())) {
    return rawApi(path, options);
  }
  return r;
}

async function rawApi(path, { method = "GET", body: payload, headers = {} } = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (method !== "GET" && method !== "HEAD") {
    const csrf = cookie("eas_csrf");
    if (csrf) sent["X-CSRF-Token"] = csrf;
  }
  let res;
  try {
    res = await fetch(path, { method, body: payload, headers: sent, credentials: "same-origin", cache: "no-store" });
  } catch (err) {
    return { ok: false, status: 0, doc: null, error: String(err) };
  }
  let doc = null;
  try {
    doc = await res.json();
  } catch (_) { /* not JSON */ }
  noteOutage(path, res.status, doc);
  return { ok: res.ok, status: res.status, doc, headers: res.headers };
}

// ---- database outage ---------------------------------------------------------------------------
// Two signals, neither polled: an API answer of 503 with servicekit's DATABASE_UNAVAILABLE
// text, and service heartbeats (over /ws, the bus stays up) whose readiness checks say the
// database failed. A heartbeat whose database check passed, received after the last such 503,
// clears the first; so does an ok answer from the same API (a page without the live view).
const DATABASE_UNAVAILABLE = "the database is unavailable; try again shortly";
const outage = { restAt: 0, restApi: null, since: null };

function apiOf(path) {
  return path.split("?")[0].split("/").slice(0, 3).join("/"); // "/api/alerts"
}

function noteOutage(path, status, doc) {
  if (!path.startsWith("/api/")) return;
  if (status === 503 && doc && doc.detail === DATABASE_UNAVAILABLE) {
    outage.restAt = Date.now();
    outage.restApi = apiOf(path);
    render("outage");
  } else if (status >= 200 && status < 300 && outage.restAt && apiOf(path) === outage.restApi) {
    outage.restAt = 0;
    outage.restApi = null;
    render("outage");
  }
}

/** Services (live heartbeats only) whose database check fails now, and when a passing one
 * last arrived. */
function databaseReports(now) {
  const down = new Set();
  let lastOk = 0;
  for (const entry of state.health.values()) {
    const result = entry.hb && entry.hb.checks ? entry.hb.checks.database : undefined;
    if (result === undefined) continue;
    const [st] = healthState(entry, now);
    if (st === "silent" || st === "down") continue;
    if (result === "ok") lastOk = Math.max(lastOk, entry.seenAt || 0);
    else down.add(entry.hb.service);
  }
  return { down: [...down].sort(), lastOk };
}

function renderOutage() {
  const now = Date.now();
  const { down, lastOk } = databaseReports(now);
  const rest = outage.restAt > lastOk;
  const show = down.length > 0 || rest;
  const el = $("outage");
  if (!show) {
    if (outage.since) {
      outage.since = null;
      announce("The database is back: alerts received meanwhile are being stored.", false);
      // What failed to load while it was away: one fetch now, the live view does the rest.
      if ($("notice").textContent.startsWith("Could not load alerts")) notice("");
      loadAlerts();
    }
    el.hidden = true;
    return;
  }
  outage.since ||= now;
  el.dataset.sources = [down.length ? "heartbeat" : "", rest ? "rest" : ""].filter(Boolean).join(" ");
  $("outage-since").textContent = formatClock(new Date(outage.since));
  $("outage-since").dateTime = new Date(outage.since).toISOString();
  $("outage-who").textContent = down.length
    ? `${down.join(", ")} cannot reach it`
    : "the station answered that it cannot reach it";
  el.hidden = false;
}

function detailOf(r) {
  const d = r.doc && r.doc.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.map((e) => e.msg || JSON.stringify(e)).join("; ");
  return r.error || `HTTP ${r.status}`;
}

/** The active alerts, all pages. Events arriving meanwhile wait and are applied after. */
async function loadAlerts() {
  state.alertsLoading = true;
  const items = [];
  let status = 200;
  try {
    let cursor = null;
    let pages = 0;
    do {
      const q = new URLSearchParams({ status: "active", limit: "500" });
      if (cursor) q.set("cursor", cursor);
      const r = await api(`/api/alerts?${q}`);
      if (!r.ok) {
        status = r.status || 0;
        if (status !== 401 && status !== 403) notice(`Could not load alerts: ${detailOf(r)}`);
        return status;
      }
      items.push(...(r.doc.items || []));
      cursor = r.doc.next_cursor;
      pages += 1;
    } while (cursor && pages < 20);
    state.alerts = new Map(items.map((a) => [a.id, a]));
    return status;
  } finally {
    state.alertsLoading = false;
    const queued = state.alertQueue;
    state.alertQueue = [];
    for (const msg of queued) applyAlertEvent(msg);
    render("alerts");
  }
}

/** Who is signed in, so the screens show their controls before /ws says it too. */
async function loadPrincipal() {
  if (!config.login) {
    screens.setPrincipal(state.principal);
    return;
  }
  const r = await api("/api/auth/me");
  if (r.ok && r.doc && r.doc.role) {
    state.principal = { ...(state.principal || {}), subject: r.doc.username, role: r.doc.role };
    renderWho();
  }
  screens.setPrincipal(state.principal);
}

async function loadSettings() {
  const r = await api("/api/settings");
  let zoneName = null;
  // The station's area on the maps; a role without settings:read is told it is not shown.
  const area = r.ok && r.doc && r.doc.settings ? r.doc.settings.location || null : null;
  for (const m of maps) m.setArea(r.ok || r.status === 403 ? area : undefined);
  if (r.ok && r.doc && typeof r.doc === "object") {
    const doc = r.doc.settings || r.doc.current || r.doc;
    const identity = (doc && doc.identity) || {};
    if (identity.timezone && setTimeZone(identity.timezone)) zoneName = identity.timezone;
    if (identity.name) {
      $("station-name").textContent = identity.name;
      document.title = `${identity.name} — live dashboard`;
    }
  }
  $("tz-name").textContent = zoneName ? `the station's time zone (${zoneName})` : `your browser's time zone (${timeZone()})`;
  $("tz-label").textContent = timeZone();
  $("tz-label").title = zoneName ? "station time zone" : "browser time zone";
  render("all");
}

// ---- live events -------------------------------------------------------------------------------

function applyAlertEvent(msg) {
  const env = msg.envelope || {};
  const alert = env.data && env.data.alert;
  if (!alert || alert.id === undefined) return;
  if (state.alertsLoading) {
    state.alertQueue.push(msg);
    return;
  }
  const known = state.alerts.get(alert.id);
  if (alert.state === "active") {
    state.alerts.set(alert.id, { ...(known || {}), ...alert });
    if (!known) {
      state.fresh.add(alert.id);
      if (state.subscribed.has("alerts")) {
        announce(`New alert: ${alert.event}, ${alert.severity}, for ${alert.area_desc}.`);
      }
    }
  } else if (known) {
    state.alerts.delete(alert.id);
    const why = { cancelled: "cancelled", expired: "expired", updated: "replaced by an update" }[alert.state] || alert.state;
    if (state.subscribed.has("alerts")) announce(`${alert.event} for ${alert.area_desc} ${why}.`, false);
  }
  render("alerts");
}

function newer(entry, id) {
  return !entry || !entry.id || compareIds(id, entry.id) >= 0;
}

function inputKey(data, env) {
  return String(data.input_id ?? data.name ?? data.input ?? data.output ?? env.subject ?? "input");
}

function onEvent(msg) {
  const env = msg.envelope || {};
  const data = env.data || {};
  switch (msg.topic) {
    case "alerts":
      applyAlertEvent(msg);
      break;
    case "same": {
      if (state.sameIds.has(msg.id)) break;
      state.sameIds.add(msg.id);
      state.same.push({ id: msg.id, type: env.type, data, time: env.time });
      state.same.sort((a, b) => compareIds(b.id, a.id));
      for (const dropped of state.same.splice(SAME_KEEP)) state.sameIds.delete(dropped.id);
      if (env.type === "same.header" && state.subscribed.has("same")) announce(`SAME header heard: ${sameText(data)}`, false);
      render("same");
      break;
    }
    case "monitor":
    case "levels": {
      const key = inputKey(data, env);
      const entry = state.monitors.get(key) || {};
      if (msg.topic === "monitor" && newer({ id: entry.statusId }, msg.id)) {
        entry.status = data;
        entry.statusId = msg.id;
      } else if (msg.topic === "levels" && newer({ id: entry.levelId }, msg.id)) {
        entry.level = data;
        entry.levelId = msg.id;
      }
      state.monitors.set(key, entry);
      render("monitors");
      break;
    }
    case "pollers": {
      const key = String(data.feed || env.subject || env.source);
      if (newer(state.pollers.get(key), msg.id)) state.pollers.set(key, { data, id: msg.id, time: env.time });
      render("pollers");
      break;
    }
    case "health": {
      const key = `${data.service || "?"}/${data.instance || "?"}`;
      const entry = state.health.get(key) || {};
      if (env.type === "system.alarm") {
        if (!entry.alarmId || compareIds(msg.id, entry.alarmId) > 0) {
          entry.alarm = data;
          entry.alarmId = msg.id;
          entry.alarmTime = env.time;
        }
      } else if (newer(entry, msg.id)) {
        entry.hb = data;
        entry.id = msg.id;
        entry.time = env.time;
        entry.seenAt = Date.now(); // the browser's clock, as the 503s it is compared with
      }
      state.health.set(key, entry);
      render("health");
      break;
    }
    case "settings":
      if (!data.sections || data.sections.includes("identity")) loadSettings();
      break;
    default:
      break;
  }
  if (["relay", "playout", "levels", "monitor", "settings"].includes(msg.topic)) screens.onEvent(msg);
}

function onResync(topic, msg, windowMs) {
  if (topic === "alerts") {
    // A first look back into a stream that has no entry at all (a new station): there is no
    // event the snapshot could have missed, so nothing to reload.
    if (windowMs && msg.reason === "unknown_id" && !msg.first_id) return;
    loadAlerts();
  } else if (windowMs && msg.reason === "too_many" && windowMs > 20000) {
    // The first look back was too long for the server's replay limit: look back less far.
    state.live.resubscribe(topic, Math.round(windowMs / 10));
  }
}

// ---- connection state --------------------------------------------------------------------------

function onState(name, detail) {
  state.conn = { state: name, detail };
  if (name === "live" && detail.principal) {
    state.principal = detail.principal;
    renderWho();
    screens.setPrincipal(state.principal);
  }
  renderConn();
}

function renderConn() {
  const { state: name, detail } = state.conn;
  const el = $("conn");
  el.dataset.state = name;
  let text;
  if (name === "live") text = "Live";
  else if (name === "connecting") text = "Connecting…";
  else if (name === "reconnecting") {
    if (detail.retryAt) {
      const s = Math.max(0, Math.ceil((detail.retryAt - Date.now()) / 1000));
      text = s > 0 ? `Reconnecting in ${s}s` : "Reconnecting…";
    } else text = "Reconnecting…";
  } else text = `Offline${detail.reason ? ` — ${detail.reason}` : ""}`;
  const span = $("conn-text");
  if (span.textContent !== text) span.textContent = text;
}

function renderWho() {
  const p = state.principal;
  const anonymous = !p || !p.role;
  $("who").textContent = anonymous ? "Read-only view" : `${p.subject} (${p.role})`;
  $("signin").hidden = !(config.login && anonymous);
  $("signout").hidden = !(config.login && !anonymous);
}

async function onAuthFailure() {
  // The socket's token expired or was refused: try the refresh cookie once.
  if (await refreshSession()) return true;
  if (config.login && cookie("eas_csrf")) await api("/api/auth/logout", { method: "POST" });
  state.principal = null;
  renderWho();
  if (config.anonymous) return true; // carry on read-only
  showLogin("Your session has ended. Sign in again.");
  return false;
}

function startLive() {
  if (!config.live) {
    onState("offline", { reason: "no live service on this station" });
    return;
  }
  if (!state.live) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    state.live = new LiveConnection({
      url: `${scheme}//${location.host}/ws`,
      topics: ["alerts", "same", "monitor", "levels", "pollers", "health", "settings", "relay", "playout"],
      history: HISTORY,
      onEvent,
      onSubscribed: (topic) => state.subscribed.add(topic),
      onResync,
      onState,
      onAuthFailure,
    });
    window.eas = { live: state.live, state }; // for the console (and the browser test)
  }
  state.live.start();
}

// ---- rendering -------------------------------------------------------------------------------

const dirty = new Set();
let frame = 0;

function render(part) {
  dirty.add(part);
  if (!frame) frame = requestAnimationFrame(flush);
}

function flush() {
  frame = 0;
  const all = dirty.has("all");
  if (all || dirty.has("alerts")) renderAlerts();
  if (all || dirty.has("same")) renderSame();
  if (all || dirty.has("monitors")) renderMonitors();
  if (all || dirty.has("pollers")) renderPollers();
  if (all || dirty.has("health")) renderHealth();
  if (all || dirty.has("health") || dirty.has("outage")) renderOutage();
  dirty.clear();
}

function setEmpty(id, empty) {
  $(id).hidden = !empty;
}

function sortedAlerts() {
  return [...state.alerts.values()].sort((a, b) =>
    (b.relevant === true) - (a.relevant === true)
    || (SEVERITY_RANK[b.severity] ?? 0) - (SEVERITY_RANK[a.severity] ?? 0)
    || String(b.sent).localeCompare(String(a.sent)));
}

const alertNodes = new Map(); // alert id -> {el, sig}: a card is rebuilt only when it changed

// Every match when the API lists them (relevance_matches), else the one relevance_reason
// that alerts stored before matches existed carry.
function relevanceText(a) {
  const matches = Array.isArray(a.relevance_matches) ? a.relevance_matches : [];
  if (!matches.length) return a.relevance_reason || (a.relevant ? "relevant" : "not relevant");
  return matches.map((m) => `${m.kind} ${m.rule.replace(/^ugc_/, "")}: alert ${m.alert_code} ~ station ${m.station_code}`).join("; ");
}

// What the feed document broke and the poller repaired, in words (poller deviation names).
const FEED_DEVIATIONS = {
  sender_held_name: "the sender field held the office's name (older NWS API); it is shown as the sender name",
  sender_missing: "no sender was given",
  sender_invalid: "the sender was not a valid CAP sender (spaces or commas)",
  sender_assumed_nws: "the sender address was taken to be the NWS's own (w-nws.webmaster@noaa.gov)",
  sender_sanitised: "spaces and commas in the sender were replaced with dashes",
  from_cap_xml: "the alert was read from its own CAP XML, as its JSON was unusable",
  reference_sender_normalised: "a reference named the office instead of the sender address",
  reference_unusable: "a reference could not be read and was left out",
  geometry_unusable: "the polygon could not be read; the zone and county codes were used",
  time_unusable: "an optional time (effective, onset or expires) could not be read and was left out",
  enum_case: "a CAP value had the wrong letter case (or CAP 1.0's Very Likely)",
  enum_unknown: "an urgency, severity or certainty was not a CAP value and became Unknown",
  event_missing: "no event name was given; it was named from the SAME event code",
  area_desc_missing: "no area description was given",
};

function feedDeviationText(d) {
  return FEED_DEVIATIONS[d] || d.replaceAll("_", " ");
}

function alertCard(a) {
  const titleId = `alert-${a.id}-title`;
  return h("li", { class: `alert ${severityClass(a.severity)}${a.relevant ? " relevant" : ""}`, dataset: { id: String(a.id) } },
    h("article", { "aria-labelledby": titleId },
      h("div", { class: "alert-top" },
        h("span", { class: "sev" }, a.severity || "Unknown"),
        a.relevant
          ? h("span", { class: "badge here", title: relevanceText(a) }, "Your area")
          : h("span", { class: "badge elsewhere", title: relevanceText(a) }, "Elsewhere"),
        a.status && a.status !== "Actual" ? h("span", { class: "badge test" }, a.status) : null,
        a.same_event ? h("span", { class: "code", title: "SAME event code" }, a.same_event) : null),
      h("h3", { class: "alert-event", id: titleId },
        h("button", { type: "button", class: "open", "aria-haspopup": "dialog", onclick: () => openDetail(a.id) }, a.event)),
      a.headline ? h("p", { class: "headline" }, a.headline) : null,
      h("p", { class: "areas" }, a.area_desc || "(no area given)"),
      h("p", { class: "meta" },
        countdown(a.expires),
        h("span", {}, `${a.urgency || "?"} · ${a.certainty || "?"}`),
        h("span", {}, `sent ${formatDateTime(a.sent)}`))));
}

function renderAlerts() {
  const list = $("alert-list");
  const alerts = sortedAlerts();
  $("alert-count").textContent = String(alerts.length);
  setEmpty("alerts-empty", alerts.length === 0);
  const wanted = [];
  for (const a of alerts) {
    const sig = JSON.stringify([a.event, a.severity, a.relevant, a.relevance_reason, a.relevance_matches, a.status,
      a.same_event, a.headline, a.area_desc, a.expires, a.urgency, a.certainty, a.sent, timeZone()]);
    let node = alertNodes.get(a.id);
    if (!node || node.sig !== sig) {
      const el = alertCard(a);
      if (node) node.el.replaceWith(el);
      node = { el, sig };
      alertNodes.set(a.id, node);
    }
    if (state.fresh.has(a.id)) {
      node.el.classList.remove("fresh");
      void node.el.offsetWidth; // restart the highlight animation
      node.el.classList.add("fresh");
    }
    wanted.push(node.el);
  }
  for (const [id, node] of alertNodes) {
    if (!state.alerts.has(id)) {
      node.el.remove();
      alertNodes.delete(id);
    }
  }
  // Move nodes only where the order changed (moving a focused node would drop its focus).
  wanted.forEach((el, i) => {
    if (list.children[i] !== el) list.insertBefore(el, list.children[i] || null);
  });
  state.fresh.clear();
  for (const m of maps) m.update(state.alerts);
}

function sameText(data) {
  if (typeof data.description === "string" && data.description) return data.description;
  const hd = data.header;
  if (typeof hd === "string" && hd) return hd;
  if (hd && typeof hd === "object") {
    const places = (hd.locations || []).map((l) => l.name || l.code).join(", ");
    return `${hd.originator_name || hd.originator || "?"}: ${hd.event_name || hd.event_code || "?"} for ${places || "?"}`;
  }
  return data.text || "(undecoded)";
}

// Each way a heard header breaks 47 CFR 11.31, in the plain language eas-monitor sends
// (the one table is eas_schemas.same_codes.DEVIATIONS); the names when an older event has none.
function deviationNotes(data) {
  const notes = Array.isArray(data.deviation_notes) ? data.deviation_notes : [];
  if (notes.length) return notes.map(String);
  return (Array.isArray(data.deviations) ? data.deviations : []).map((d) => `Deviation from 47 CFR 11.31: ${d}`);
}

function hearingText(data) {
  const inputs = (data.inputs || []).map((i) => i.input_name || i.input_id).filter(Boolean);
  return inputs.length ? `heard on ${inputs.join(", ")}` : "";
}

function renderSame() {
  const list = clear($("same-list"));
  setEmpty("same-empty", state.same.length === 0);
  for (const item of state.same) {
    const d = item.data || {};
    const when = d.first_heard_at || d.started_at || item.time;
    let title;
    let kind;
    if (item.type === "same.eom") {
      kind = "eom";
      title = "End of message (NNNN)";
    } else if (item.type === "same.attention_tone") {
      kind = "tone";
      const hz = (d.frequencies_hz || []).map((f) => Math.round(f)).join(" + ");
      title = `Attention signal${hz ? ` ${hz} Hz` : ""}${d.duration_s ? `, ${d.duration_s.toFixed(1)} s` : ""}`;
    } else {
      kind = "header";
      title = sameText(d);
    }
    const conf = typeof d.confidence === "number" ? `confidence ${Math.round(d.confidence * 100)}%` : "";
    const bursts = typeof d.bursts === "number" ? `${d.agreed ?? d.bursts}/${d.bursts} bursts` : "";
    const purge = d.header && typeof d.header === "object" && d.header.purge_at;
    const notes = kind === "header" ? deviationNotes(d) : [];
    list.appendChild(
      h("li", { class: `same-item same-${kind}` },
        h("p", { class: "same-desc" }, title),
        h("p", { class: "meta" },
          h("time", { datetime: when || "" }, formatDateTime(when)),
          hearingText(d) ? h("span", {}, hearingText(d)) : null,
          conf ? h("span", {}, conf) : null,
          bursts ? h("span", {}, bursts) : null,
          purge ? countdown(purge, { prefix: "purges in ", past: "purged" }) : null),
        kind === "header" && d.text ? h("code", { class: "raw" }, d.text) : null,
        notes.length
          ? h("div", { class: "deviations", role: "note", "aria-label": "Non-standard header" },
            ...notes.map((n) => h("p", {}, n)))
          : null));
  }
}

function pct(db) {
  if (typeof db !== "number" || Number.isNaN(db)) return 0;
  return Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
}

function renderMonitors() {
  const list = clear($("monitor-list"));
  const entries = [...state.monitors.entries()].sort((a, b) => a[0].localeCompare(b[0], undefined, { numeric: true }));
  setEmpty("monitors-empty", entries.length === 0);
  for (const [key, m] of entries) {
    const s = m.status || {};
    const lv = m.level || {};
    const name = s.name || lv.name || s.input || lv.input || key;
    const st = s.state || (s.running === true ? "running" : s.running === false ? "stopped" : "unknown");
    const hasLevel = typeof lv.rms_dbfs === "number" || typeof lv.peak_dbfs === "number";
    const valuetext = hasLevel ? `RMS ${lv.rms_dbfs?.toFixed(1)} dBFS, peak ${lv.peak_dbfs?.toFixed(1)} dBFS` : "no level yet";
    list.appendChild(
      h("li", { class: `monitor state-${st}` },
        h("div", { class: "row" },
          h("h3", {}, name),
          h("span", { class: `pill state-${st}` }, st),
          s.signal_present === undefined ? null
            : h("span", { class: `pill ${s.signal_present ? "ok" : "warn"}` }, s.signal_present ? "signal" : "no signal"),
          s.decoder_state && s.decoder_state !== "idle" ? h("span", { class: "pill busy" }, s.decoder_state.replace("_", " ")) : null),
        h("div", {
          class: `meter${lv.clipping ? " clipping" : ""}${lv.silence ? " silent" : ""}`,
          role: "meter", "aria-label": `${name} audio level`,
          "aria-valuemin": "-60", "aria-valuemax": "0",
          "aria-valuenow": hasLevel ? String(Math.round(lv.rms_dbfs ?? -60)) : "-60",
          "aria-valuetext": valuetext,
        },
        h("span", { class: "rms", style: `clip-path:inset(0 ${100 - pct(lv.rms_dbfs)}% 0 0)` }),
        h("span", { class: "peak", style: `left:${pct(lv.peak_dbfs)}%` })),
        h("p", { class: "meta" },
          h("span", {}, valuetext),
          lv.silence ? h("span", { class: "warn" }, "silence") : null,
          lv.clipping ? h("span", { class: "bad" }, "clipping") : null,
          s.restarts ? h("span", {}, `${s.restarts} restarts`) : null,
          s.errors ? h("span", { class: "warn" }, `${s.errors} errors`) : null),
        s.last_header ? h("p", { class: "meta" }, "last header ", h("code", {}, s.last_header), s.last_header_at ? [" ", ago(s.last_header_at)] : null) : null,
        s.last_error ? h("p", { class: "meta bad" }, s.last_error) : null));
  }
}

function renderPollers() {
  const list = clear($("poller-list"));
  const entries = [...state.pollers.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  setEmpty("pollers-empty", entries.length === 0);
  for (const [feed, p] of entries) {
    const d = p.data;
    const ok = d.ok !== false;
    const started = d.started_at || p.time;
    const next = started && typeof d.next_poll_s === "number"
      ? new Date(new Date(started).getTime() + ((d.duration_s || 0) + d.next_poll_s) * 1000) : null;
    list.appendChild(
      h("li", { class: `status ${ok ? "feed-ok" : "feed-bad"}` },
        h("div", { class: "row" },
          h("h3", {}, feed),
          h("span", { class: `pill ${ok ? "ok" : "bad"}` }, ok ? "OK" : "failing"),
          d.feed_kind ? h("span", { class: "pill" }, d.feed_kind) : null),
        h("p", { class: "meta" },
          h("span", {}, "polled "), ago(started),
          h("span", {}, d.not_modified ? "not modified" : `${d.fetched ?? 0} fetched, ${d.new ?? 0} new`),
          d.errors ? h("span", { class: "bad" }, `${d.errors} errors`) : null,
          next ? countdown(next, { prefix: "next in ", past: "due" }) : null),
        (d.rejected || []).length ? h("p", { class: "meta warn" }, `rejected: ${d.rejected.slice(0, 3).join("; ")}`) : null));
  }
}

function healthState(entry, now) {
  const hb = entry.hb;
  const alarmNewer = entry.alarm && (!entry.time || new Date(entry.alarmTime) >= new Date(entry.time));
  if (alarmNewer && entry.alarm.state === "down") return ["down", entry.alarm.reason || "missed heartbeats"];
  if (!hb) return ["unknown", "no heartbeat seen"];
  const silent = now - new Date(entry.time).getTime();
  const limit = Math.max(3 * (hb.interval_s || 5) * 1000, 15000);
  if (silent > limit) return ["silent", `silent for ${formatDuration(silent)}`];
  return hb.ready ? ["ready", "ready"] : ["degraded", "not ready"];
}

function renderHealth() {
  const list = clear($("health-list"));
  const now = Date.now();
  for (const key of staleHealthKeys(state.health, now)) state.health.delete(key);
  const entries = [...state.health.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  setEmpty("health-empty", entries.length === 0);
  for (const [key, entry] of entries) {
    const [st, text] = healthState(entry, now);
    const hb = entry.hb || {};
    const figures = Object.entries(hb.figures || {}).slice(0, 4)
      .map(([k, v]) => `${k.replaceAll("_", " ")} ${Number.isInteger(v) ? v : Number(v).toFixed(2)}`);
    list.appendChild(
      h("li", { class: `status health-${st}` },
        h("div", { class: "row" },
          h("h3", {}, hb.service || entry.alarm?.service || key.split("/")[0]),
          h("span", { class: `pill health-${st}` }, text)),
        h("p", { class: "meta" },
          h("span", {}, hb.instance || entry.alarm?.instance || ""),
          hb.version ? h("span", {}, `v${hb.version}`) : null,
          typeof hb.uptime_s === "number" ? h("span", {}, `up ${formatDuration(hb.uptime_s * 1000)}`) : null,
          entry.time ? h("span", {}, "seen ", ago(entry.time)) : null),
        figures.length ? h("p", { class: "meta figures" }, figures.join(" · ")) : null));
  }
}

// ---- alert detail ------------------------------------------------------------------------------

async function openDetail(id) {
  const dialog = $("detail");
  const bodyEl = clear($("detail-body"));
  $("detail-title").textContent = state.alerts.get(id)?.event || "Alert";
  bodyEl.appendChild(h("p", { class: "empty" }, "Loading…"));
  if (!dialog.open) dialog.showModal();
  const r = await api(`/api/alerts/${encodeURIComponent(id)}`);
  clear(bodyEl);
  if (!r.ok) {
    bodyEl.appendChild(h("p", { class: "error", role: "alert" }, `Could not load this alert: ${detailOf(r)}`));
    return;
  }
  const { alert: a, references = [], referenced_by: referencedBy = [], history = [] } = r.doc;
  $("detail-title").textContent = a.event;
  const dl = (rows) => h("dl", { class: "facts" }, rows.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  bodyEl.append(
    h("p", { class: `detail-badges ${severityClass(a.severity)}` },
      h("span", { class: "sev" }, a.severity),
      h("span", { class: "pill" }, a.urgency), h("span", { class: "pill" }, a.certainty),
      h("span", { class: "pill" }, a.state),
      h("span", { class: `badge ${a.relevant ? "here" : "elsewhere"}` }, a.relevant ? "Your area" : "Elsewhere")),
    a.headline ? h("p", { class: "headline" }, a.headline) : null,
    h("h3", {}, "Description"),
    h("p", { class: "prose" }, a.description || "No description given."),
    h("h3", {}, "Instructions"),
    h("p", { class: "prose" }, a.instruction || "No instructions given."),
    h("h3", {}, "Details"),
    dl([
      ["Areas", a.area_desc],
      ["Sent", formatDateTime(a.sent)],
      a.onset ? ["Onset", formatDateTime(a.onset)] : null,
      ["Expires", a.expires ? [formatDateTime(a.expires), " (", countdown(a.expires), ")"] : "not given"],
      ["Relevance", relevanceText(a)],
      (a.deviations || []).length ? ["Feed deviations", a.deviations.map(feedDeviationText).join("; ")] : null,
      a.same_event ? ["SAME event", a.same_event] : null,
      (a.same_codes || []).length ? ["SAME codes", a.same_codes.join(" ")] : null,
      (a.ugc_codes || []).length ? ["UGC zones", a.ugc_codes.join(" ")] : null,
      ["Message", `${a.msg_type} · ${a.status} · ${a.scope || ""}`],
      ["Sender", a.sender],
      ["Identifier", h("code", {}, a.identifier)],
      ["Source", `${a.source}${a.feed ? ` (${a.feed})` : ""}`],
    ]),
    h("h3", {}, "References"),
    references.length || referencedBy.length
      ? h("ul", { class: "refs" },
        references.map((ref) => h("li", {},
          "refers to ",
          ref.alert_id ? h("button", { type: "button", class: "link", onclick: () => openDetail(ref.alert_id) }, ref.identifier) : h("code", {}, ref.identifier),
          ` from ${ref.sender}, sent ${formatDateTime(ref.sent)}`, ref.alert_id ? "" : " (not stored)")),
        referencedBy.map((rel) => h("li", {},
          `${rel.msg_type} `,
          h("button", { type: "button", class: "link", onclick: () => openDetail(rel.id) }, rel.identifier),
          ` sent ${formatDateTime(rel.sent)} refers to this alert`)))
      : h("p", {}, "None."),
    h("h3", {}, "History"),
    history.length
      ? h("ol", { class: "history" }, history.map((e) => h("li", {},
        h("time", { datetime: e.at }, formatDateTime(e.at)), " ",
        h("strong", {}, `${e.from_state || "new"} → ${e.to_state}`), ` ${e.reason}`)))
      : h("p", {}, "No state changes yet."));
}

// ---- login -------------------------------------------------------------------------------------

function notice(text) {
  const el = $("notice");
  el.textContent = text || "";
  el.hidden = !text;
}

function announce(text, urgent = true) {
  const el = $("announcer");
  el.setAttribute("aria-live", urgent ? "assertive" : "polite");
  el.textContent = text;
}

function showLogin(message) {
  if (state.live) state.live.stop("Signed out.");
  onState("offline", { reason: "sign in to see the live view" });
  screens.show("board");
  $("board").hidden = true;
  $("views").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message || "";
  $("signin").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
  $("login-user").focus();
}

async function submitLogin(ev) {
  ev.preventDefault();
  const form = ev.target;
  const user = form.username.value.trim();
  const password = form.password.value;
  if (!user || !password) {
    $("login-error").textContent = "Enter your user name and password.";
    return;
  }
  $("login-submit").disabled = true;
  $("login-error").textContent = "";
  const r = await api("/api/auth/token", {
    method: "POST",
    body: new URLSearchParams({ username: user, password }),
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
  });
  $("login-submit").disabled = false;
  if (r.ok) {
    form.password.value = "";
    $("login-view").hidden = true;
    if (state.live) state.live.reset();
    await boot();
    return;
  }
  if (r.status === 429) {
    const wait = r.headers && r.headers.get("Retry-After");
    $("login-error").textContent = `Too many attempts. Try again${wait ? ` in ${wait} s` : " later"}.`;
  } else if (r.status === 400 || r.status === 401) {
    $("login-error").textContent = "Wrong user name or password.";
  } else {
    $("login-error").textContent = `Sign-in failed: ${detailOf(r)}`;
  }
}

async function submitSetup(ev) {
  ev.preventDefault();
  const form = ev.target;
  const doc = {
    setup_token: form.setup_token.value.trim(),
    username: form.username.value.trim(),
    password: form.password.value,
  };
  if (!doc.setup_token || !doc.username || !doc.password) {
    $("setup-error").textContent = "Fill in all three fields.";
    return;
  }
  $("setup-submit").disabled = true;
  const r = await api("/api/auth/setup", {
    method: "POST",
    body: JSON.stringify(doc),
    headers: { "Content-Type": "application/json" },
  });
  $("setup-submit").disabled = false;
  if (!r.ok) {
    $("setup-error").textContent = r.status === 403
      ? "That setup token is wrong or used, or an admin already exists."
      : `Could not create the admin: ${detailOf(r)}`;
    return;
  }
  const loginForm = $("login-form");
  loginForm.username.value = doc.username;
  loginForm.password.value = doc.password;
  form.reset();
  form.closest("details").open = false;
  loginForm.requestSubmit();
}

async function signOut() {
  await api("/api/auth/logout", { method: "POST" });
  if (state.live) {
    state.live.stop("Signed out.");
    state.live.reset();
  }
  state.principal = null;
  state.alerts.clear();
  if (config.anonymous) {
    await boot();
  } else {
    showLogin("Signed out.");
  }
}

// ---- start -------------------------------------------------------------------------------------

async function boot() {
  notice("");
  const status = await loadAlerts();
  if (status === 401 || status === 403) {
    if (config.login) {
      showLogin(status === 403 ? "This account may not read alerts." : "");
    } else {
      notice("This station requires a token to read alerts, and it has no sign-in service.");
    }
    return;
  }
  $("login-view").hidden = true;
  $("views").hidden = false;
  screens.show(screens.view);
  renderWho();
  await loadPrincipal();
  loadSettings();
  startLive();
}

function setupChrome() {
  document.documentElement.classList.toggle("wall", wall);
  $("map-panel").hidden = !wall;
  if (wallMap) wallMap.show(true);
  const toggle = $("wall-toggle");
  const other = new URLSearchParams(location.search);
  if (wall) other.delete("wall");
  else other.set("wall", "1");
  toggle.href = `${location.pathname}${other.toString() ? `?${other}` : ""}`;
  toggle.textContent = wall ? "Standard view" : "Wall display";
  $("login-form").addEventListener("submit", submitLogin);
  $("setup-form").addEventListener("submit", submitSetup);
  $("signin").addEventListener("click", () => showLogin(""));
  $("signout").addEventListener("click", signOut);
  $("detail-close").addEventListener("click", () => $("detail").close());
  $("detail").addEventListener("click", (ev) => {
    if (ev.target === $("detail")) $("detail").close(); // a click on the backdrop
  });
  $("tz-label").textContent = timeZone();
  // Local redraw only (clock, countdowns, "ago", reconnect countdown, silent services).
  const redraw = () => {
    const now = new Date();
    $("clock").textContent = formatClock(now);
    $("clock").dateTime = now.toISOString();
    tick(document.body, now.getTime());
    if (state.conn.state === "reconnecting") renderConn();
    if (state.health.size) render("health");
  };
  redraw();
  setInterval(redraw, 1000);
}

const mapOptions = { api, detailOf, onOpen: (id) => openDetail(id) };
const mainMap = createAlertMap({ ...mapOptions, root: $("map-main"), titleId: "map-title" });
// The wall display has the map beside the alert list, on the board itself.
const wallMap = wall ? createAlertMap({ ...mapOptions, root: $("map-wall"), titleId: "map-panel-title" }) : null;
const maps = wallMap ? [mainMap, wallMap] : [mainMap];
const screens = createConsole({
  api, detailOf, announce, map: mainMap, settings: createSettings({ api, detailOf, announce }),
});
setupChrome();
boot();

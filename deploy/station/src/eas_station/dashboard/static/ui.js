// Small DOM and formatting helpers. Text always goes in as text nodes (never innerHTML).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") el.setAttribute("style", value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// ---- time ----------------------------------------------------------------------------------

let zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
let fmtDateTime;
let fmtTime;
let fmtClock;

function build() {
  const opts = { timeZone: zone };
  fmtDateTime = new Intl.DateTimeFormat(undefined, {
    ...opts, month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
  fmtTime = new Intl.DateTimeFormat(undefined, { ...opts, hour: "2-digit", minute: "2-digit", second: "2-digit" });
  fmtClock = new Intl.DateTimeFormat(undefined, {
    ...opts, weekday: "short", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}
build();

/** Use the station's IANA time zone; false if the browser does not know it. */
export function setTimeZone(name) {
  if (!name) return false;
  try {
    new Intl.DateTimeFormat(undefined, { timeZone: name }).format(new Date());
  } catch (_) {
    return false;
  }
  zone = name;
  build();
  return true;
}

export function timeZone() {
  return zone;
}

function toDate(value) {
  if (!value) return null;
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function formatDateTime(value) {
  const d = toDate(value);
  return d ? fmtDateTime.format(d) : "—";
}

export function formatTime(value) {
  const d = toDate(value);
  return d ? fmtTime.format(d) : "—";
}

export function formatClock(value) {
  return fmtClock.format(value);
}

/** "2h 05m", "4m 09s", "12s". */
export function formatDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const d = Math.floor(s / 86400);
  const hr = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m ${String(sec).padStart(2, "0")}s`;
  return `${sec}s`;
}

/** A <time> whose text counts down to `value`; `tick()` keeps its text current. */
export function countdown(value, { prefix = "expires in ", past = "expired" } = {}) {
  const d = toDate(value);
  if (!d) return h("span", { class: "countdown none" }, "no expiry given");
  const el = h("time", {
    class: "countdown",
    datetime: d.toISOString(),
    dataset: { until: String(d.getTime()), prefix, past },
    title: formatDateTime(d),
  });
  updateCountdown(el, Date.now());
  return el;
}

export function updateCountdown(el, now) {
  const until = Number(el.dataset.until);
  const left = until - now;
  el.textContent = left > 0 ? `${el.dataset.prefix}${formatDuration(left)}` : el.dataset.past;
  el.classList.toggle("soon", left > 0 && left < 15 * 60 * 1000);
  el.classList.toggle("past", left <= 0);
}

export function tick(root, now = Date.now()) {
  for (const el of root.querySelectorAll("time.countdown[data-until]")) updateCountdown(el, now);
  for (const el of root.querySelectorAll("time.ago[data-since]")) {
    el.textContent = `${formatDuration(now - Number(el.dataset.since))} ago`;
  }
}

export function ago(value) {
  const d = toDate(value);
  if (!d) return h("span", {}, "—");
  const el = h("time", {
    class: "ago", datetime: d.toISOString(), dataset: { since: String(d.getTime()) },
    title: formatDateTime(d),
  });
  el.textContent = `${formatDuration(Date.now() - d.getTime())} ago`;
  return el;
}

// ---- alerts --------------------------------------------------------------------------------

export const SEVERITY_RANK = { Extreme: 4, Severe: 3, Moderate: 2, Minor: 1, Unknown: 0 };

export function severityClass(severity) {
  return `sev-${String(severity || "Unknown").toLowerCase()}`;
}

export function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

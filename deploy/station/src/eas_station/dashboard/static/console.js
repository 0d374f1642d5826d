// The operator's console: relay, playout, station log and origination screens over the
// audio-control API. Each screen loads by REST when it is shown and again when a /ws event of
// its topic (relay, playout) says something changed; nothing polls. Controls are drawn only
// for a role whose permissions the API would accept (servicekit.auth.permissions mirrors this
// table): a viewer sees the same lists without the buttons.

import { createPlacePicker } from "./places.js";
import { clear, countdown, formatDateTime, h } from "./ui.js";

const VIEWER = ["alerts:read", "monitor:read", "audio:read", "system:read"];
const OPERATOR = [...VIEWER, "alerts:write", "monitor:write", "audio:write", "relay:confirm", "settings:read"];
const ADMIN = [...OPERATOR, "settings:write", "users:admin", "audit:read"];
const ROLE_PERMISSIONS = {
  viewer: new Set([...VIEWER, "account:self"]),
  operator: new Set([...OPERATOR, "account:self"]),
  admin: new Set([...ADMIN, "account:self"]),
};
const ANONYMOUS = new Set(VIEWER);

const STATE_TEXT = {
  pending_confirmation: "waiting for confirmation",
  scheduled: "scheduled",
  ignored: "ignored",
  confirmed: "confirmed",
  rejected: "rejected",
  expired: "expired",
  withdrawn: "withdrawn",
  superseded: "superseded",
  forwarded: "forwarded",
  aired: "aired",
};
const FORWARDABLE = new Set(["ignored", "expired"]);
const RESENDABLE = new Set(["aired", "interrupted"]);
const LOG_PAGE = 50;
const DECISION_PAGE = 25;

const $ = (id) => document.getElementById(id);

export function permissionsOf(principal) {
  if (!principal || !principal.role) return ANONYMOUS;
  return ROLE_PERMISSIONS[principal.role] || ANONYMOUS;
}

/** "2026-12-02T14:30" in the browser's zone (a datetime-local value) as an ISO UTC time. */
function localToIso(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

function pct(db) {
  if (typeof db !== "number" || Number.isNaN(db)) return 0;
  return Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
}

function meter(label, level) {
  const has = level && typeof level.rms_dbfs === "number";
  const text = has ? `RMS ${level.rms_dbfs.toFixed(1)} dBFS, peak ${level.peak_dbfs.toFixed(1)} dBFS` : "no level yet";
  return h("div", {
    class: "meter", role: "meter", "aria-label": label,
    "aria-valuemin": "-60", "aria-valuemax": "0",
    "aria-valuenow": has ? String(Math.round(level.rms_dbfs)) : "-60",
    "aria-valuetext": text, title: text,
  },
  h("span", { class: "rms", style: `clip-path:inset(0 ${100 - pct(has ? level.rms_dbfs : -60)}% 0 0)` }),
  h("span", { class: "peak", style: `left:${pct(has ? level.peak_dbfs : -60)}%` }));
}

export function createConsole({ api, detailOf, announce, map, settings }) {
  let perms = ANONYMOUS;
  let current = "board";
  const can = (p) => perms.has(p);
  const pending = new Map(); // view -> timer of a coalesced reload after events
  const levels = new Map(); // output name -> latest OutputLevel from /ws levels
  const decisions = { items: [], cursor: null };
  const log = { items: [], cursor: null, total: 0 };
  let composed = null; // the message the origination screen composed

  const loaders = {
    relay: loadRelay,
    playout: loadPlayout,
    log: () => loadLog(false),
    originate: () => loadOriginate(),
    users: loadUsers,
    inputs: loadInputs,
    account: () => {},
    map: () => {},
    settings: () => settings.load(perms),
  };

  // ---- navigation -----------------------------------------------------------------------------

  function applyPermissions() {
    for (const el of document.querySelectorAll("[data-perm]")) el.hidden = !can(el.dataset.perm);
    const nav = $("views");
    const active = nav.querySelector(`[data-view="${current}"]`);
    if (active && active.hidden) show("board");
  }

  function show(view) {
    current = view;
    for (const btn of $("views").querySelectorAll("button[data-view]")) {
      if (btn.dataset.view === view) btn.setAttribute("aria-current", "page");
      else btn.removeAttribute("aria-current");
    }
    $("board").hidden = view !== "board";
    for (const name of Object.keys(loaders)) $(`view-${name}`).hidden = name !== view;
    if (map) map.show(view === "map");
    if (loaders[view]) loaders[view]();
  }

  function reloadSoon(view) {
    if (current !== view || pending.has(view)) return;
    // A decision changes several times in a second (decided, composed): one reload for all.
    pending.set(view, setTimeout(() => {
      pending.delete(view);
      if (current === view) loaders[view]();
    }, 150));
  }

  // ---- relay --------------------------------------------------------------------------------

  function checksList(d) {
    return h("ul", { class: "checks" }, (d.checks || []).map((c) =>
      h("li", { class: c.passed ? "pass" : "fail" },
        h("span", { class: "pill" }, c.passed ? "pass" : "fail"), " ",
        h("strong", {}, c.rule.replaceAll("_", " ")), ": ", c.detail)));
  }

  function noteField(id, label) {
    return [h("label", { for: id }, label), h("input", { id, maxlength: "500", autocomplete: "off" })];
  }

  /** A button that asks once more, in place, before `run` (for what cannot be undone or puts
   * something on air): the question and Yes / No replace it until answered. */
  function confirmButton(label, question, run, { cls = "", yes = "Yes" } = {}) {
    const box = h("span", { class: "confirm-inline" });
    const first = h("button", { type: "button", class: cls }, label);
    const ask = () => {
      const no = h("button", { type: "button", onclick: () => { clear(box).append(first); first.focus(); } }, "No, keep it");
      const ok = h("button", { type: "button", class: cls || "primary", onclick: () => { ok.disabled = true; run(); } }, yes);
      clear(box).append(h("span", { role: "group", "aria-label": question }, h("span", {}, `${question} `), ok, " ", no));
      ok.focus();
    };
    first.addEventListener("click", ask);
    box.append(first);
    return box;
  }

  async function act(errorId, path, note) {
    $(errorId).textContent = "";
    const r = await api(path, {
      method: "POST",
      body: note ? JSON.stringify({ note }) : undefined,
      headers: note ? { "Content-Type": "application/json" } : {},
    });
    if (!r.ok) {
      $(errorId).textContent = detailOf(r);
      return null;
    }
    return r.doc;
  }

  function pendingCard(d) {
    const id = d.decision_id;
    const titleId = `pending-${id}-title`;
    const controls = can("relay:confirm")
      ? h("div", { class: "actions" },
        h("button", {
          type: "button", class: "primary",
          onclick: async () => {
            const done = await act("relay-error", `/api/audio/confirmations/${id}/confirm`);
            if (done) announce(`Confirmed: ${d.event_name}. ${done.reason}`, false);
            loadRelay();
          },
        }, `Confirm ${d.event_name}`),
        noteField(`reject-note-${id}`, "Reason for rejecting (optional)"),
        h("button", {
          type: "button", class: "danger",
          onclick: async () => {
            const note = $(`reject-note-${id}`).value.trim();
            const done = await act("relay-error", `/api/audio/confirmations/${id}/reject`, note);
            if (done) announce(`Rejected: ${d.event_name}.`, false);
            loadRelay();
          },
        }, `Reject ${d.event_name}`))
      : null;
    return h("li", { class: "card pending", dataset: { id: String(id) } },
      h("article", { "aria-labelledby": titleId },
        h("div", { class: "row" },
          h("h4", { id: titleId }, d.event_name),
          d.event_code ? h("span", { class: "code" }, d.event_code) : null,
          h("span", { class: "pill" }, d.source),
          d.confirm_by ? countdown(d.confirm_by, { prefix: "confirm within ", past: "timed out" }) : null),
        h("p", {}, d.reason),
        d.on_timeout ? h("p", { class: "meta" }, `If no one acts: ${d.on_timeout === "relay" ? "it is relayed" : "it is ignored"}.`) : null,
        d.header ? h("p", {}, h("code", { class: "raw" }, d.header)) : null,
        h("p", { class: "meta" }, `${(d.locations || []).join(" ")} · decided ${formatDateTime(d.decided_at)}`),
        d.message_id
          ? h("p", { class: "preview" }, h("audio", {
            controls: true, preload: "none", src: `/api/audio/messages/${d.message_id}/audio`,
            "aria-label": `Preview of the ${d.event_name} message`,
          }))
          : h("p", { class: "meta" }, "The message is being composed; its preview follows."),
        h("details", {}, h("summary", {}, "Why: every rule checked"), checksList(d)),
        controls));
  }

  function decisionItem(d) {
    const id = d.decision_id;
    const forward = can("relay:confirm") && FORWARDABLE.has(d.state)
      ? h("div", { class: "actions" },
        noteField(`forward-note-${id}`, "Reason for forwarding (optional)"),
        h("button", {
          type: "button",
          onclick: async () => {
            const note = $(`forward-note-${id}`).value.trim();
            const done = await act("relay-error", `/api/audio/decisions/${id}/forward`, note);
            if (done) announce(`Forwarded: ${d.event_name}.`, false);
            loadRelay();
          },
        }, `Forward ${d.event_name} by hand`))
      : null;
    return h("li", { class: `card decision state-${d.state}`, dataset: { id: String(id) } },
      h("div", { class: "row" },
        h("h4", {}, d.event_name),
        d.event_code ? h("span", { class: "code" }, d.event_code) : null,
        h("span", { class: `pill state-${d.state}` }, STATE_TEXT[d.state] || d.state),
        h("span", { class: "pill" }, d.source),
        h("time", { datetime: d.decided_at }, formatDateTime(d.decided_at))),
      h("p", {}, d.reason),
      d.actor ? h("p", { class: "meta" }, `by ${d.actor}`) : null,
      h("details", {}, h("summary", {}, "Every rule checked"), checksList(d)),
      forward);
  }

  async function loadRelay() {
    $("relay-error").textContent = "";
    const [p, list] = await Promise.all([api("/api/audio/confirmations"), fetchDecisions(null)]);
    const pl = clear($("pending-list"));
    if (!p.ok) $("relay-error").textContent = `Could not load the confirmations: ${detailOf(p)}`;
    const items = p.ok ? p.doc : [];
    $("pending-count").textContent = String(items.length);
    $("pending-empty").hidden = items.length > 0;
    for (const d of items) pl.appendChild(pendingCard(d));
    if (list) {
      decisions.items = list.items;
      decisions.cursor = list.next_cursor;
      renderDecisions();
    }
  }

  async function fetchDecisions(cursor) {
    const q = new URLSearchParams({ limit: String(DECISION_PAGE) });
    const st = $("decisions-state").value;
    if (st) q.set("state", st);
    if (cursor) q.set("cursor", cursor);
    const r = await api(`/api/audio/decisions?${q}`);
    if (!r.ok) {
      $("relay-error").textContent = `Could not load the decisions: ${detailOf(r)}`;
      return null;
    }
    return r.doc;
  }

  function renderDecisions() {
    const list = clear($("decision-list"));
    $("decisions-empty").hidden = decisions.items.length > 0;
    for (const d of decisions.items) list.appendChild(decisionItem(d));
    $("decisions-more").hidden = !decisions.cursor;
  }

  async function moreDecisions() {
    const page = await fetchDecisions(decisions.cursor);
    if (!page) return;
    decisions.items.push(...page.items);
    decisions.cursor = page.next_cursor;
    renderDecisions();
  }

  // ---- playout ------------------------------------------------------------------------------

  async function loadPlayout() {
    $("playout-error").textContent = "";
    const [q, o] = await Promise.all([api("/api/audio/playout/queue"), api("/api/audio/outputs")]);
    if (!q.ok) $("playout-error").textContent = `Could not load the queue: ${detailOf(q)}`;
    if (!o.ok) $("playout-error").textContent = `Could not load the outputs: ${detailOf(o)}`;
    const queue = q.ok ? q.doc : [];
    const ql = clear($("queue-list"));
    $("queue-count").textContent = String(queue.length);
    $("queue-empty").hidden = queue.length > 0;
    for (const item of queue) ql.appendChild(queueItem(item));
    const outputs = o.ok ? o.doc : [];
    const ol = clear($("output-list"));
    $("outputs-empty").hidden = outputs.length > 0;
    for (const out of outputs) ol.appendChild(outputCard(out));
  }

  function queueItem(item) {
    const cancel = can("audio:write") && item.state === "queued"
      ? h("button", {
        type: "button",
        onclick: async () => {
          await act("playout-error", `/api/audio/playout/${item.item_id}/cancel`);
          loadPlayout();
        },
      }, `Take ${item.event_code} off the queue`)
      : null;
    return h("li", { class: `card queue-item state-${item.state}`, dataset: { id: String(item.item_id) } },
      h("div", { class: "row" },
        h("h4", {}, item.event_code),
        h("span", { class: `pill state-${item.state}` }, item.state === "playing" ? "on air" : item.state),
        h("span", { class: "pill" }, item.precedence_class.replaceAll("_", " ")),
        item.output ? h("span", { class: "pill" }, item.output) : null,
        item.state === "queued" && item.air_at ? countdown(item.air_at, { prefix: "airs in ", past: "due" }) : null),
      h("p", {}, h("code", { class: "raw" }, item.header)),
      h("p", { class: "meta" }, item.reason),
      cancel);
  }

  function outputCard(out) {
    const st = out.status || {};
    const level = levels.get(out.name) || st.level;
    const onAir = st.playing || (level && level.playing);
    const tone = can("audio:write")
      ? h("button", {
        type: "button",
        onclick: async () => {
          const reply = await act("playout-error", `/api/audio/outputs/${encodeURIComponent(out.name)}/test-tone`);
          if (reply) $("playout-result").textContent = `${out.name}: ${reply.detail}`;
        },
      }, `Test tone on ${out.name}`)
      : null;
    return h("li", { class: `card output${onAir ? " on-air" : ""}`, dataset: { output: out.name } },
      h("div", { class: "row" },
        h("h4", {}, out.name),
        h("span", { class: "pill" }, out.kind),
        h("span", { class: `pill ${out.enabled ? "ok" : "warn"}` }, out.enabled ? "enabled" : "disabled"),
        h("span", { class: `pill ${onAir ? "busy" : ""}`, dataset: { role: "air" } }, onAir ? "on air" : "idle"),
        h("span", { class: "pill" }, st.held_by ? `held by ${st.held_by}` : "no worker holds it")),
      meter(`${out.name} output level`, level),
      st.last
        ? h("p", { class: "meta" }, `last: item ${st.last.item_id} ${st.last.state}, ${formatDateTime(st.last.finished_at || st.last.started_at)}`,
          st.last.error ? h("span", { class: "bad" }, ` ${st.last.error}`) : null)
        : h("p", { class: "meta" }, "nothing aired on it yet"),
      st.last && RESENDABLE.has(st.last.state) && can("audio:write")
        ? h("div", { class: "actions" }, confirmButton(`Air item ${st.last.item_id} again`,
          `Air item ${st.last.item_id} again now, on every output?`, () => resend(st.last.item_id), { yes: "Air it again" }))
        : null,
      tone ? h("div", { class: "actions" }, tone) : null,
      can("settings:write")
        ? h("div", { class: "actions" },
          h("button", { type: "button", onclick: () => editOutput(out) }, `Edit ${out.name}`),
          confirmButton(`Delete ${out.name}`, `Delete the output ${out.name}?`, () => deleteOutput(out.name), { cls: "danger", yes: `Delete ${out.name}` }))
        : null);
  }

  // ---- output configuration (settings:write) -------------------------------------------------

  let editingOutput = null; // the name of the output the form edits, else null (a new one)

  function showOutputFields() {
    const kind = $("out-kind").value;
    const keying = $("out-keying").value;
    for (const el of $("output-form").querySelectorAll("[data-out]")) el.hidden = el.dataset.out !== kind;
    for (const el of $("output-form").querySelectorAll("[data-key]")) el.hidden = !el.dataset.key.split(" ").includes(keying);
  }

  function num(value) {
    const text = String(value).trim();
    if (text === "") return null;
    return Number.isNaN(Number(text)) ? text : Number(text);
  }

  function outputBody(form) {
    const kind = form.kind.value;
    const config = { kind, gain_db: num(form.gain_db.value) ?? 0 };
    if (kind === "wav_folder") Object.assign(config, { folder: form.folder.value.trim(), subtype: form.subtype.value });
    if (kind === "null") config.realtime = form.realtime.checked;
    if (kind === "device") {
      const dev = form.device.value.trim();
      Object.assign(config, { device: /^\d+$/.test(dev) ? Number(dev) : dev, channels: Number(form.channels.value), latency: form.latency.value });
    }
    if (kind === "stream") {
      Object.assign(config, {
        url: form.url.value.trim(), username: form.username.value.trim(), format: form.format.value,
        bitrate_kbps: num(form.bitrate_kbps.value),
      });
    }
    const k = form.keying.value;
    const keying = { kind: k };
    if (k === "gpio") Object.assign(keying, { pin: num(form.pin.value), active_high: form.active_high.checked });
    if (k === "serial") Object.assign(keying, { port: form.port.value.trim(), line: form.line.value, active_high: form.active_high.checked });
    const body = { name: form.name.value.trim(), config, keying, enabled: form.enabled.checked };
    // A blank password keeps the stored one (left out); only a stream has one.
    if (kind === "stream" && form.secret.value) body.secret = form.secret.value;
    return body;
  }

  function editOutput(out) {
    const form = $("output-form");
    endOutputEditing();
    editingOutput = out.name;
    const c = out.config || {};
    form.name.value = out.name;
    form.kind.value = out.kind;
    form.enabled.checked = Boolean(out.enabled);
    form.gain_db.value = String(c.gain_db ?? 0);
    for (const key of ["folder", "subtype", "device", "channels", "latency", "url", "username", "format", "bitrate_kbps"]) {
      if (c[key] !== undefined && c[key] !== null) form[key].value = String(c[key]);
    }
    form.realtime.checked = Boolean(c.realtime);
    const k = out.keying || { kind: "none" };
    form.keying.value = k.kind;
    if (k.pin !== undefined) form.pin.value = String(k.pin);
    if (k.port !== undefined) form.port.value = k.port;
    if (k.line !== undefined) form.line.value = k.line;
    form.active_high.checked = k.active_high !== false;
    $("out-secret").placeholder = out.has_secret ? "stored (blank keeps it)" : "";
    showOutputFields();
    $("output-form-title").textContent = `Edit ${out.name}`;
    $("out-submit").textContent = "Save output";
    $("out-cancel").hidden = false;
    form.name.focus();
  }

  function endOutputEditing() {
    editingOutput = null;
    $("output-form").reset();
    clearFieldErrors("output-form");
    $("out-secret").placeholder = "";
    showOutputFields();
    $("output-form-title").textContent = "New output";
    $("out-submit").textContent = "Add output";
    $("out-cancel").hidden = true;
  }

  async function saveOutput(ev) {
    ev.preventDefault();
    const form = $("output-form");
    clearFieldErrors("output-form");
    $("playout-error").textContent = "";
    $("playout-result").textContent = "";
    const body = outputBody(form);
    const path = editingOutput ? `/api/audio/outputs/${encodeURIComponent(editingOutput)}` : "/api/audio/outputs";
    const r = await api(path, {
      method: editingOutput ? "PUT" : "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
    });
    if (!r.ok) {
      const placed = fieldErrors("output-form", "out-", r);
      if (!placed) {
        if (r.status === 409 && /name/i.test(detailOf(r))) $("out-name-error").textContent = detailOf(r);
        else $("out-config-error").textContent = detailOf(r);
      }
      return;
    }
    $("playout-result").textContent = editingOutput ? `${r.doc.name} is saved.` : `${r.doc.name} is added.`;
    endOutputEditing();
    loadPlayout();
  }

  async function deleteOutput(name) {
    $("playout-error").textContent = "";
    const r = await api(`/api/audio/outputs/${encodeURIComponent(name)}`, { method: "DELETE" });
    if (!r.ok) $("playout-error").textContent = `${name}: ${detailOf(r)}`;
    else $("playout-result").textContent = `${name} is deleted.`;
    if (editingOutput === name) endOutputEditing();
    loadPlayout();
  }

  async function resend(itemId) {
    const reply = await act("playout-error", `/api/audio/playout/${itemId}/resend`);
    if (reply) $("playout-result").textContent = `Item ${itemId} is queued again as item ${reply.item_id} (${reply.state}).`;
    loadPlayout();
  }

  async function stopPlayout() {
    const reply = await act("playout-error", "/api/audio/playout/stop");
    if (reply) $("playout-result").textContent = reply.detail;
    loadPlayout();
  }

  function onLevel(data) {
    if (!data || typeof data.output !== "string") return;
    levels.set(data.output, data);
    if (current !== "playout") return;
    const card = $("output-list").querySelector(`[data-output="${CSS.escape(data.output)}"]`);
    if (!card) return;
    card.querySelector("[role=meter]").replaceWith(meter(`${data.output} output level`, data));
    card.classList.toggle("on-air", Boolean(data.playing));
    const air = card.querySelector("[data-role=air]");
    air.textContent = data.playing ? "on air" : "idle";
    air.classList.toggle("busy", Boolean(data.playing));
  }

  // ---- station log --------------------------------------------------------------------------

  function logQuery() {
    const form = $("log-filter");
    const q = new URLSearchParams();
    const from = localToIso(form.from.value);
    const to = localToIso(form.to.value);
    if (from) q.set("from", from);
    if (to) q.set("to", to);
    if (form.kind.value) q.set("kind", form.kind.value);
    const ev = form.event_code.value.trim().toUpperCase();
    if (ev) q.set("event_code", ev);
    const text = form.text.value.trim();
    if (text) q.set("text", text);
    return q;
  }

  function clearFieldErrors(formId) {
    for (const el of $(formId).querySelectorAll(".field-error")) el.textContent = "";
    for (const el of $(formId).querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  /** Show a 4xx's per-field messages beside their inputs (slot `${prefix}${field}-error`);
   * true if one was placed. */
  function fieldErrors(formId, prefix, r, inputs = {}) {
    const d = r.doc && r.doc.detail;
    if (!Array.isArray(d)) return false;
    let placed = false;
    for (const e of d) {
      // ["body", "locations", 0] names the field "locations": the last string of the location.
      const name = Array.isArray(e.loc) ? [...e.loc].reverse().find((x) => typeof x === "string") : null;
      const slot = name && $(`${prefix}${name}-error`);
      if (!slot) continue;
      slot.textContent = slot.textContent ? `${slot.textContent} ${e.msg}` : e.msg;
      const input = inputs[name] || $(formId).elements[name];
      if (input) input.setAttribute("aria-invalid", "true");
      placed = true;
    }
    return placed;
  }

  async function loadLog(more) {
    $("log-error").textContent = "";
    clearFieldErrors("log-filter");
    const q = logQuery();
    $("log-csv").href = `/api/audio/log.csv${q.toString() ? `?${q}` : ""}`;
    q.set("limit", String(LOG_PAGE));
    if (more && log.cursor) q.set("cursor", log.cursor);
    const r = await api(`/api/audio/log?${q}`);
    if (!r.ok) {
      if (!fieldErrors("log-filter", "log-", r)) $("log-error").textContent = `Could not load the station log: ${detailOf(r)}`;
      return;
    }
    if (more) log.items.push(...r.doc.items);
    else log.items = r.doc.items;
    log.cursor = r.doc.next_cursor;
    log.total = r.doc.total;
    renderLog();
  }

  function renderLog() {
    const body = clear($("log-body"));
    for (const e of log.items) {
      body.appendChild(h("tr", { dataset: { seq: String(e.seq) } },
        h("td", {}, String(e.seq)),
        h("td", {}, h("time", { datetime: e.at }, formatDateTime(e.at))),
        h("td", {}, e.kind.replaceAll("_", " ")),
        h("td", {}, e.summary,
          e.header && !e.summary.includes(e.header) ? h("code", { class: "raw" }, e.header) : null,
          e.reasons ? h("p", { class: "meta" }, e.reasons) : null),
        h("td", {}, e.actor || "")));
    }
    $("log-total").textContent = `${log.items.length} of ${log.total} entries`;
    $("log-more").hidden = !log.cursor;
  }

  function setMonth() {
    const value = $("log-month").value;
    const [y, m] = value.split("-").map(Number);
    const link = $("log-pdf");
    if (y && m) link.href = `/api/audio/log/${y}/${m}.pdf`;
  }

  async function verify(path, label) {
    const out = $("verify-result");
    out.textContent = `Checking the ${label}…`;
    out.className = "result";
    const r = await api(path);
    if (!r.ok) {
      out.textContent = `Could not check the ${label}: ${detailOf(r)}`;
      out.classList.add("bad");
      return;
    }
    const v = r.doc;
    if (v.intact) {
      out.textContent = `The ${label} is intact: ${v.count} entries checked${v.count ? ` (#${v.first_seq}–#${v.last_seq})` : ""}, signed by key ${v.key_id}.`;
      out.classList.add("ok");
    } else {
      const b = v.broken || {};
      out.textContent = `The ${label} is broken at entry #${b.seq} (${b.reason}): ${b.detail}`;
      out.classList.add("bad");
    }
  }

  // ---- origination --------------------------------------------------------------------------

  const TESTS = {
    rwt: { path: "/api/audio/originations/rwt", text: "Compose a Required Weekly Test (header and end of message, no narration) for the station's area?" },
    rmt: { path: "/api/audio/originations/rmt", text: "Compose a Required Monthly Test, with the standard test script, for the station's area?" },
  };
  let asking = null;
  let eventsLoaded = false;
  const places = createPlacePicker({
    api,
    ids: { input: "orig-place", datalist: "orig-places", list: "orig-locations", error: "orig-locations-error" },
    max: 31,
    maxMessage: "A message names at most 31 locations (47 CFR 11.31).",
  });

  // Legal purge times (47 CFR 11.31): 15-minute steps to an hour, then 30-minute steps.
  function durations() {
    const out = ["0015", "0030", "0045", "0100"];
    for (let m = 90; m <= 24 * 60; m += 30) {
      out.push(`${String(Math.floor(m / 60)).padStart(2, "0")}${String(m % 60).padStart(2, "0")}`);
    }
    return out;
  }

  async function loadOriginate() {
    if (eventsLoaded) return;
    const r = await api("/api/reference/events");
    if (!r.ok) {
      $("originate-error").textContent = `Could not load the event codes: ${detailOf(r)}`;
      return;
    }
    eventsLoaded = true;
    const select = clear($("orig-event"));
    select.appendChild(h("option", { value: "" }, "choose an event"));
    for (const e of r.doc) select.appendChild(h("option", { value: e.code }, `${e.name} (${e.code})`));
    const dur = clear($("orig-duration"));
    for (const d of durations()) dur.appendChild(h("option", { value: d }, `${d} (${Number(d.slice(0, 2))} h ${d.slice(2)} min)`));
    dur.value = "0100";
  }

  async function composeForm(ev) {
    ev.preventDefault();
    const form = $("originate-form");
    clearFieldErrors("originate-form");
    $("originate-error").textContent = "";
    const text = form.text.value.trim();
    const recording = form.audio.files[0] || null;
    const doc = {
      event_code: form.event_code.value,
      originator: form.originator.value || null,
      locations: [...places.chosen.keys()],
      duration: form.duration.value,
      narration: text ? "tts" : "none",
      text: text || null,
    };
    if (!doc.event_code) {
      $("orig-event_code-error").textContent = "Choose the event.";
      form.event_code.setAttribute("aria-invalid", "true");
      form.event_code.focus();
      return;
    }
    if (recording && text) {
      $("orig-audio-error").textContent = "Either a narration text or a recording, not both: clear one.";
      form.audio.setAttribute("aria-invalid", "true");
      form.audio.focus();
      return;
    }
    let request;
    if (recording) {
      // The recorded narration goes as multipart; the browser sets the boundary itself.
      const body = new FormData();
      body.set("event_code", doc.event_code);
      if (doc.originator) body.set("originator", doc.originator);
      body.set("locations", doc.locations.join(","));
      body.set("duration", doc.duration);
      body.set("audio", recording, recording.name);
      request = api("/api/audio/originations/upload", { method: "POST", body });
    } else {
      request = api("/api/audio/originations", {
        method: "POST", body: JSON.stringify(doc), headers: { "Content-Type": "application/json" },
      });
    }
    $("orig-submit").disabled = true;
    const r = await request;
    $("orig-submit").disabled = false;
    if (!r.ok) {
      if (recording && (r.status === 413 || r.status === 415)) {
        $("orig-audio-error").textContent = detailOf(r);
        form.audio.setAttribute("aria-invalid", "true");
      } else if (!fieldErrors("originate-form", "orig-", r, { locations: $("orig-place") })) {
        $("originate-error").textContent = `Could not compose the message: ${detailOf(r)}`;
      }
      return;
    }
    showComposed(r.doc);
  }

  function ask(kind) {
    asking = kind;
    $("originate-error").textContent = "";
    $("originate-confirm-text").textContent = TESTS[kind].text;
    $("originate-confirm").hidden = false;
    $("originate-yes").focus();
  }

  async function composeTest() {
    const kind = asking;
    $("originate-confirm").hidden = true;
    if (!kind) return;
    asking = null;
    $("originate-yes").disabled = true;
    const msg = await act("originate-error", TESTS[kind].path);
    $("originate-yes").disabled = false;
    if (msg) showComposed(msg);
  }

  function showComposed(msg) {
    composed = msg;
    $("composed").hidden = false;
    $("composed-header").textContent = msg.header;
    $("composed-source").textContent = {
      upload: "Narration: the recording you uploaded.", tts: "Narration: your text, spoken.", none: "No narration: header, tones and end of message.",
    }[msg.narration_source] || "";
    $("composed-audio").src = msg.audio_url || `/api/audio/messages/${msg.id}/audio`;
    $("composed-result").textContent = "";
    $("composed-send").hidden = false;
    $("composed-send").focus();
  }

  async function sendComposed() {
    if (!composed) return;
    const item = await act("originate-error", `/api/audio/messages/${composed.id}/send`);
    if (!item) return;
    $("composed-result").textContent = `Queued for air as item ${item.item_id} (${item.state}). Follow it on the Playout screen.`;
    $("composed-send").hidden = true;
    composed = null;
  }

  // ---- monitor inputs -------------------------------------------------------------------------

  const INPUTS = "/api/eas-monitor/inputs";
  let editing = null; // the id of the input the form edits, else null (a new one)

  function showKindFields() {
    const kind = $("in-kind").value;
    for (const el of $("input-form").querySelectorAll("[data-kinds]")) {
      el.hidden = !el.dataset.kinds.split(" ").includes(kind);
    }
  }

  function inputConfig(form) {
    const kind = form.kind.value;
    const config = { kind };
    if (kind === "stream") config.url = form.url.value.trim();
    if (kind === "file" || kind === "pcm_pipe") config.path = form.path.value.trim();
    if (kind === "file") config.loop = form.loop.checked;
    if (kind === "pcm_tcp") {
      config.host = form.host.value.trim();
      config.port = form.port.value ? Number(form.port.value) : null;
    }
    if (kind === "device") config.device = form.device.value.trim();
    if (kind === "device" || kind === "pcm_tcp" || kind === "pcm_pipe") config.rate = Number(form.rate.value);
    return config;
  }

  async function loadInputs() {
    $("inputs-error").textContent = "";
    const r = await api(INPUTS);
    if (!r.ok) {
      $("inputs-error").textContent = `Could not load the inputs: ${detailOf(r)}`;
      return;
    }
    const list = clear($("input-list"));
    $("inputs-empty").hidden = r.doc.length > 0;
    for (const input of r.doc) list.appendChild(inputCard(input));
  }

  async function inputAction(input, verb, method = "POST") {
    $("inputs-error").textContent = "";
    $("inputs-result").textContent = verb === "start" ? `Starting ${input.name}…` : "";
    const path = verb === "delete" ? `${INPUTS}/${input.id}` : `${INPUTS}/${input.id}/${verb}`;
    const r = await api(path, { method });
    if (r.status === 504) {
      // Not confirmed in time, still being retried: its card follows the status reports.
      $("inputs-result").textContent = `${input.name}: ${detailOf(r)}`;
    } else if (!r.ok) {
      $("inputs-result").textContent = "";
      $("inputs-error").textContent = `${input.name}: ${detailOf(r)}`;
    } else {
      const said = { start: "is running (confirmed by its worker)", stop: "is stopped", delete: "is deleted" }[verb];
      $("inputs-result").textContent = `${input.name} ${said}.`;
    }
    loadInputs();
  }

  function describe(config) {
    if (config.kind === "stream") return config.url;
    if (config.kind === "pcm_tcp") return `${config.host}:${config.port}, ${config.rate} Hz`;
    if (config.kind === "device") return `${config.device}, ${config.rate} Hz`;
    if (config.kind === "pcm_pipe") return `${config.path}, ${config.rate} Hz`;
    return `${config.path}${config.loop ? " (looped)" : ""}`;
  }

  function inputCard(input) {
    const s = input.status || {};
    const st = s.state || "unknown";
    const write = can("monitor:write");
    return h("li", { class: `card input state-${st}`, dataset: { input: input.name, id: String(input.id) } },
      h("div", { class: "row" },
        h("h4", {}, input.name),
        h("span", { class: "pill" }, input.kind.replace("_", " ")),
        h("span", { class: `pill state-${st}`, dataset: { role: "state" } }, st),
        h("span", { class: "pill" }, input.wanted_running ? "kept running" : "stopped by an operator"),
        s.signal_present === undefined ? null
          : h("span", { class: `pill ${s.signal_present ? "ok" : "warn"}` }, s.signal_present ? "signal" : "no signal")),
      h("p", { class: "meta" }, describe(input.config)),
      s.last_error ? h("p", { class: "meta bad" }, s.last_error) : null,
      write
        ? h("div", { class: "actions" },
          input.wanted_running
            ? h("button", { type: "button", onclick: () => inputAction(input, "stop") }, `Stop ${input.name}`)
            : h("button", { type: "button", class: "primary", onclick: () => inputAction(input, "start") }, `Start ${input.name}`),
          h("button", { type: "button", onclick: () => editInput(input) }, `Edit ${input.name}`),
          h("button", { type: "button", class: "danger", onclick: () => inputAction(input, "delete", "DELETE") }, `Delete ${input.name}`))
        : null);
  }

  /** A status report changes the card's state in place: rebuilding the list on every report
   * would take the keyboard focus away from the button an operator is on. */
  function onMonitorStatus(data) {
    if (current !== "inputs" || !data || data.input_id === undefined) return;
    const card = $("input-list").querySelector(`[data-id="${Number(data.input_id)}"]`);
    if (!card) return;
    const pill = card.querySelector("[data-role=state]");
    if (data.state && pill.textContent !== data.state) {
      pill.textContent = data.state;
      pill.className = `pill state-${data.state}`;
    }
  }

  function editInput(input) {
    const form = $("input-form");
    form.reset();
    clearFieldErrors("input-form");
    editing = input.id;
    form.name.value = input.name;
    form.kind.value = input.config.kind;
    for (const key of ["url", "path", "host", "port", "device", "rate"]) {
      if (input.config[key] !== undefined) form[key].value = String(input.config[key]);
    }
    form.loop.checked = Boolean(input.config.loop);
    showKindFields();
    $("input-form-title").textContent = `Edit ${input.name}`;
    $("in-submit").textContent = "Save changes";
    $("in-cancel").hidden = false;
    form.name.focus();
  }

  function endEditing() {
    editing = null;
    $("input-form").reset();
    clearFieldErrors("input-form");
    showKindFields();
    $("input-form-title").textContent = "New input";
    $("in-submit").textContent = "Add input";
    $("in-cancel").hidden = true;
  }

  async function saveInput(ev) {
    ev.preventDefault();
    const form = $("input-form");
    clearFieldErrors("input-form");
    $("inputs-error").textContent = "";
    $("inputs-result").textContent = "";
    const doc = { name: form.name.value.trim(), config: inputConfig(form) };
    const r = await api(editing ? `${INPUTS}/${editing}` : INPUTS, {
      method: editing ? "PATCH" : "POST", body: JSON.stringify(doc), headers: { "Content-Type": "application/json" },
    });
    if (!r.ok) {
      // A config error names config.<kind>.<field>: the field's own slot, else the config's.
      const placed = fieldErrors("input-form", "in-", r);
      if (!placed) {
        const slot = $("in-config-error");
        if (r.status === 422 || r.status === 409) slot.textContent = detailOf(r);
        else $("inputs-error").textContent = `Could not save the input: ${detailOf(r)}`;
      }
      return;
    }
    $("inputs-result").textContent = editing ? `${r.doc.name} is saved.` : `${r.doc.name} is added, stopped: start it below.`;
    endEditing();
    loadInputs();
  }

  // ---- users and one's own account ---------------------------------------------------------

  const ROLES = ["viewer", "operator", "admin"];

  async function loadUsers() {
    $("users-error").textContent = "";
    const r = await api("/api/users");
    if (!r.ok) {
      $("users-error").textContent = `Could not load the users: ${detailOf(r)}`;
      return;
    }
    const body = clear($("user-body"));
    for (const u of r.doc) body.appendChild(userRow(u));
  }

  async function patchUser(name, doc, done) {
    $("users-error").textContent = "";
    $("users-result").textContent = "";
    const r = await api(`/api/users/${encodeURIComponent(name)}`, {
      method: "PATCH", body: JSON.stringify(doc), headers: { "Content-Type": "application/json" },
    });
    if (!r.ok) {
      $("users-error").textContent = `${name}: ${detailOf(r)}`;
      return;
    }
    $("users-result").textContent = done;
    loadUsers();
  }

  function userRow(u) {
    const name = u.username;
    const roleId = `role-${name}`;
    const pwId = `reset-${name}`;
    return h("tr", { dataset: { user: name } },
      h("th", { scope: "row" }, name),
      h("td", {}, u.role),
      h("td", {}, u.disabled ? h("span", { class: "warn" }, "disabled") : "active"),
      h("td", {}, u.last_login_at ? formatDateTime(u.last_login_at) : "never"),
      h("td", {},
        h("div", { class: "actions" },
          h("label", { for: roleId, class: "sr-only" }, `Role of ${name}`),
          h("select", { id: roleId }, ROLES.map((r) => h("option", { value: r, selected: r === u.role }, r))),
          h("button", {
            type: "button",
            onclick: () => patchUser(name, { role: $(roleId).value }, `${name} is now ${$(roleId).value}.`),
          }, `Save role of ${name}`),
          h("button", {
            type: "button",
            onclick: () => patchUser(name, { disabled: !u.disabled }, `${name} is ${u.disabled ? "enabled" : "disabled"}.`),
          }, `${u.disabled ? "Enable" : "Disable"} ${name}`),
          confirmButton(`Delete ${name}`, `Delete ${name} and end their sessions?`, () => deleteUser(name), { cls: "danger", yes: `Delete ${name}` })),
        h("div", { class: "actions" },
          h("label", { for: pwId }, `New password for ${name}`),
          h("input", { id: pwId, type: "password", autocomplete: "new-password" }),
          h("button", {
            type: "button",
            onclick: () => {
              const pw = $(pwId).value;
              if (!pw) {
                $("users-error").textContent = `Type the new password for ${name} first.`;
                $(pwId).focus();
                return;
              }
              patchUser(name, { password: pw }, `${name}'s password is reset; their sessions ended.`);
            },
          }, `Reset password of ${name}`))));
  }

  async function deleteUser(name) {
    $("users-error").textContent = "";
    $("users-result").textContent = "";
    const r = await api(`/api/users/${encodeURIComponent(name)}`, { method: "DELETE" });
    if (!r.ok) $("users-error").textContent = `${name}: ${detailOf(r)}`;
    else $("users-result").textContent = `${name} is deleted; their sessions ended.`;
    loadUsers();
  }

  async function createUser(ev) {
    ev.preventDefault();
    const form = $("user-form");
    clearFieldErrors("user-form");
    $("users-error").textContent = "";
    $("users-result").textContent = "";
    const doc = { username: form.username.value.trim(), password: form.password.value, role: form.role.value };
    const r = await api("/api/users", {
      method: "POST", body: JSON.stringify(doc), headers: { "Content-Type": "application/json" },
    });
    if (!r.ok) {
      if (!fieldErrors("user-form", "user-", r)) $("users-error").textContent = `Could not create the user: ${detailOf(r)}`;
      return;
    }
    form.reset();
    $("users-result").textContent = `Created ${r.doc.username} (${r.doc.role}).`;
    loadUsers();
  }

  async function changePassword(ev) {
    ev.preventDefault();
    const form = $("password-form");
    clearFieldErrors("password-form");
    $("password-error").textContent = "";
    $("password-result").textContent = "";
    const r = await api("/api/auth/password", {
      method: "POST",
      body: JSON.stringify({ current_password: form.current_password.value, new_password: form.new_password.value }),
      headers: { "Content-Type": "application/json" },
    });
    if (!r.ok) {
      if (r.status === 403) {
        $("pw-current_password-error").textContent = detailOf(r);
        form.current_password.setAttribute("aria-invalid", "true");
      } else if (!fieldErrors("password-form", "pw-", r)) {
        $("password-error").textContent = `Could not change the password: ${detailOf(r)}`;
      }
      return;
    }
    form.reset();
    $("password-result").textContent = "Password changed. Your other sessions have ended.";
  }

  // ---- wiring -------------------------------------------------------------------------------

  for (const btn of $("views").querySelectorAll("button[data-view]")) {
    btn.addEventListener("click", () => show(btn.dataset.view));
  }
  $("decisions-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadRelay(); });
  $("decisions-more").addEventListener("click", moreDecisions);
  $("playout-stop").addEventListener("click", stopPlayout);
  $("output-form").addEventListener("submit", saveOutput);
  $("out-kind").addEventListener("change", showOutputFields);
  $("out-keying").addEventListener("change", showOutputFields);
  $("out-cancel").addEventListener("click", endOutputEditing);
  showOutputFields();
  $("log-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadLog(false); });
  $("log-more").addEventListener("click", () => loadLog(true));
  const now = new Date();
  $("log-month").value = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}`;
  $("log-month").addEventListener("change", setMonth);
  setMonth();
  $("log-verify").addEventListener("click", () => verify("/api/audio/log/verify", "station log"));
  $("audit-verify").addEventListener("click", () => verify("/api/audit/verify", "audit log"));
  $("rwt").addEventListener("click", () => ask("rwt"));
  $("rmt").addEventListener("click", () => ask("rmt"));
  $("originate-yes").addEventListener("click", composeTest);
  $("originate-no").addEventListener("click", () => { asking = null; $("originate-confirm").hidden = true; });
  $("composed-send").addEventListener("click", sendComposed);
  $("originate-form").addEventListener("submit", composeForm);
  $("user-form").addEventListener("submit", createUser);
  $("input-form").addEventListener("submit", saveInput);
  $("in-kind").addEventListener("change", showKindFields);
  $("in-cancel").addEventListener("click", endEditing);
  showKindFields();
  $("password-form").addEventListener("submit", changePassword);
  places.attach($("orig-place"));
  $("orig-add").addEventListener("click", places.add);

  return {
    setPrincipal(principal) {
      perms = permissionsOf(principal);
      applyPermissions();
    },
    onEvent(msg) {
      if (msg.topic === "relay") reloadSoon("relay");
      else if (msg.topic === "monitor") onMonitorStatus((msg.envelope || {}).data);
      else if (msg.topic === "playout") {
        reloadSoon("playout");
        const data = (msg.envelope || {}).data || {};
        if (data.state === "playing" && data.event_code) announce(`On air: ${data.event_code}${data.output ? ` on ${data.output}` : ""}.`, false);
      } else if (msg.topic === "levels") onLevel((msg.envelope || {}).data);
      else if (msg.topic === "settings" && current === "settings") settings.onChanged((msg.envelope || {}).data);
    },
    show,
    get view() { return current; },
  };
}

// The Settings screen over station-api's /api/settings: one form per section (identity and
// area, feeds, relay rules, scheduled tests, monitor defaults, messages, retention), each saved as a JSON merge patch of
// its own section against the version it was loaded from (a 409 says someone saved since);
// every bad field of a 422 is shown at its field (the answer's `fields` are dotted paths such
// as settings.relay.delay_s); version history with the changes of each version, rollback,
// export and import. Built from the SECTIONS table below, so a field is declared once; an
// operator (settings:read) sees the same values with no control to change them.

import { createPlacePicker } from "./places.js";
import { clear, formatDateTime, h } from "./ui.js";

const $ = (id) => document.getElementById(id);

const ORIGINATORS = [["EAS", "EAS: broadcast station or cable system"], ["CIV", "CIV: civil authorities"],
  ["WXR", "WXR: National Weather Service"], ["PEP", "PEP: Primary Entry Point"]];
const DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"].map((d) => [d, d]);
const SEVERITIES = ["Minor", "Moderate", "Severe", "Extreme"].map((s) => [s, s]);
const URGENCIES = ["Past", "Future", "Expected", "Immediate"].map((s) => [s, s]);

// kind: text | int | number | bool | select | multi (checkboxes) | codes (space-separated
// list) | places (county picker, SAME codes) | secret (write-only; blank keeps it)
const SECTIONS = [
  {
    key: "identity", title: "Station identity",
    fields: [
      { path: "identity.name", label: "Station name", kind: "text", max: 100 },
      { path: "identity.callsign", label: "Call sign (SAME LLLLLLLL, up to 8 characters)", kind: "text", max: 8 },
      { path: "identity.originator", label: "Originator code of the station's own messages", kind: "select", options: ORIGINATORS },
      { path: "identity.timezone", label: "Time zone (IANA, e.g. America/Chicago)", kind: "text", max: 64, list: "set-zones" },
    ],
  },
  {
    key: "location", title: "The station's area",
    fields: [
      { path: "location.same_codes", label: "Counties and states served (SAME codes)", kind: "places" },
      { path: "location.ugc_codes", label: "NWS zones and counties (UGC codes, space-separated, e.g. OHZ014 OHC035)", kind: "codes", upper: true },
    ],
  },
  {
    key: "feeds", title: "Alert feeds",
    fields: [
      { path: "feeds.nws.enabled", label: "Poll the NWS alerts API", kind: "bool" },
      { path: "feeds.nws.zones", label: "NWS zones polled (UGC codes, space-separated)", kind: "codes", upper: true },
      { path: "feeds.nws.areas", label: "NWS areas polled (state or marine area codes, space-separated)", kind: "codes", upper: true },
      { path: "feeds.nws.contact", label: "Contact sent to the NWS (e-mail or URL)", kind: "text", max: 200 },
      { path: "feeds.nws.poll_interval_s", label: "NWS poll interval (seconds, 30-3600)", kind: "int", min: 30, max: 3600 },
      { path: "feeds.ipaws.enabled", label: "Poll IPAWS-OPEN", kind: "bool" },
      { path: "feeds.ipaws.url", label: "IPAWS-OPEN feed URL", kind: "text", max: 2000, nullable: true },
      { path: "feeds.ipaws.interval_s", label: "IPAWS poll interval (seconds, 15-3600)", kind: "int", min: 15, max: 3600 },
      { path: "feeds.ipaws.pin", label: "IPAWS PIN (write-only; leave blank to keep)", kind: "secret" },
      { path: "feeds.cap_folders", label: "CAP folders watched (paths on the station, space-separated)", kind: "codes" },
    ],
  },
  {
    key: "relay", title: "Relay rules",
    fields: [
      { path: "relay.enabled", label: "Relay alerts (EAN and the national NPT need only this)", kind: "bool" },
      { path: "relay.events", label: "Event codes relayed (space-separated, e.g. TOR SVR)", kind: "codes", upper: true },
      { path: "relay.require_confirmation", label: "Relayed events that wait for an operator (space-separated)", kind: "codes", upper: true },
      { path: "relay.originators", label: "Originators relayed", kind: "multi", options: ORIGINATORS },
      { path: "relay.locations", label: "Location codes relayed (space-separated; empty: the station's area)", kind: "codes" },
      { path: "relay.confirmation_timeout_s", label: "Confirmation wait (seconds, 30-86400)", kind: "int", min: 30, max: 86400 },
      { path: "relay.confirmation_timeout_action", label: "When nobody confirms in time", kind: "select", options: [["ignore", "ignore it (expired)"], ["relay", "relay it (timed relay)"]] },
      { path: "relay.delay_s", label: "Delay before relaying (seconds, 0-600; never for an EAN)", kind: "int", min: 0, max: 600 },
      { path: "relay.msg_types", label: "CAP message types relayed", kind: "multi", options: [["Alert", "Alert"], ["Update", "Update"]] },
      { path: "relay.scopes", label: "CAP scopes relayed", kind: "multi", options: [["Public", "Public"], ["Restricted", "Restricted"]] },
      { path: "relay.allow_test_status", label: "Relay CAP alerts with status Test (lab stations only)", kind: "bool" },
      { path: "relay.hold_until_onset", label: "Hold a CAP alert until its onset", kind: "bool" },
      { path: "relay.language", label: "Primary language (RFC 5646, e.g. en)", kind: "text", max: 35 },
      { path: "relay.default_duration_minutes", label: "Valid time of a CAP alert without expiry (minutes)", kind: "int", min: 1, max: 5970 },
      { path: "relay.air_min_confidence", label: "Lowest decoder confidence relayed without confirmation (0.5-1)", kind: "number", min: 0.5, max: 1, step: 0.01 },
      { path: "relay.dedup_window_s", label: "Same alert by CAP and on air within (seconds)", kind: "int", min: 60, max: 3600 },
      { path: "relay.max_age_s", label: "Not relayed automatically when older than (seconds)", kind: "int", min: 30, max: 86400 },
      { path: "relay.cap_without_event_code.enabled", label: "Offer CAP alerts without a SAME event code for confirmation", kind: "bool" },
      { path: "relay.cap_without_event_code.min_severity", label: "… at least this severe", kind: "select", options: SEVERITIES },
      { path: "relay.cap_without_event_code.min_urgency", label: "… at least this urgent", kind: "select", options: URGENCIES },
    ],
  },
  {
    key: "tests", title: "Scheduled required tests",
    fields: [
      { path: "tests.weekly.enabled", label: "Send the Required Weekly Test", kind: "bool" },
      { path: "tests.weekly.day", label: "RWT day", kind: "select", options: DAYS },
      { path: "tests.weekly.start", label: "RWT window starts (HH:MM)", kind: "text", max: 5, pattern: "[0-2][0-9]:[0-5][0-9]" },
      { path: "tests.weekly.end", label: "RWT window ends (HH:MM)", kind: "text", max: 5, pattern: "[0-2][0-9]:[0-5][0-9]" },
      { path: "tests.monthly.enabled", label: "Send the Required Monthly Test", kind: "bool" },
      { path: "tests.monthly.week", label: "RMT week of the month (1-4)", kind: "int", min: 1, max: 4 },
      { path: "tests.monthly.day", label: "RMT day", kind: "select", options: DAYS },
      { path: "tests.monthly.start", label: "RMT window starts (HH:MM)", kind: "text", max: 5, pattern: "[0-2][0-9]:[0-5][0-9]" },
      { path: "tests.monthly.end", label: "RMT window ends (HH:MM)", kind: "text", max: 5, pattern: "[0-2][0-9]:[0-5][0-9]" },
    ],
  },
  {
    key: "monitor", title: "Monitor input defaults",
    fields: [
      { path: "monitor.sample_rate_hz", label: "Sample rate (Hz, 8000-192000)", kind: "int", min: 8000, max: 192000 },
      { path: "monitor.silence_threshold_dbfs", label: "Silence below (dBFS)", kind: "number", min: -120, max: 0, step: 0.5 },
      { path: "monitor.silence_alarm_s", label: "Silence alarm after (seconds)", kind: "int", min: 1, max: 3600 },
      { path: "monitor.clip_threshold_dbfs", label: "Clipping above (dBFS)", kind: "number", min: -20, max: 0, step: 0.1 },
      { path: "monitor.decoder_enabled", label: "Decode SAME headers", kind: "bool" },
      { path: "monitor.attention_tone_detection", label: "Detect attention signals", kind: "bool" },
    ],
  },
  {
    key: "messages", title: "Composed messages",
    fields: [
      { path: "messages.sample_rate_hz", label: "Sample rate (Hz)", kind: "select", int: true, options: [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000].map((r) => [String(r), `${r} Hz`]) },
      { path: "messages.attention_signal_s", label: "Attention signal (seconds, 8-25)", kind: "number", min: 8, max: 25, step: 0.5 },
      { path: "messages.attention_kind", label: "Attention signal", kind: "select", options: [["broadcast", "broadcast (853 + 960 Hz)"], ["nwr", "NOAA Weather Radio (1050 Hz)"]] },
      { path: "messages.tts_engine", label: "Text-to-speech engine", kind: "text", max: 32 },
      { path: "messages.tts_voice", label: "Voice", kind: "text", max: 64 },
      { path: "messages.tts_rate_wpm", label: "Speaking rate (words per minute)", kind: "int", min: 80, max: 300 },
      { path: "messages.cap_audio_max_bytes", label: "Largest CAP audio fetched (bytes)", kind: "int", min: 65536, max: 209715200 },
      { path: "messages.narration_max_s", label: "Narration cut at (seconds, at most 120)", kind: "number", min: 10, max: 120, step: 1 },
    ],
  },
  {
    key: "retention", title: "Retention",
    fields: [
      { path: "retention.alerts_days", label: "Alerts kept (days)", kind: "int", min: 1, max: 3650 },
      { path: "retention.decoded_headers_days", label: "Decoded headers kept (days)", kind: "int", min: 1, max: 3650 },
      { path: "retention.audio_days", label: "Audio kept (days)", kind: "int", min: 1, max: 3650 },
      { path: "retention.audit_days", label: "Audit log kept (days, at least 30)", kind: "int", min: 30, max: 3650 },
      { path: "retention.station_log_days", label: "Station log kept (days; 47 CFR 73.1840 asks for 730)", kind: "int", min: 30, max: 3650 },
      { path: "retention.settings_versions", label: "Settings versions kept", kind: "int", min: 2, max: 100000 },
    ],
  },
];

const idOf = (path) => `set-${path.replaceAll(".", "-")}`;

function get(doc, path) {
  return path.split(".").reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), doc);
}

function put(doc, path, value) {
  const keys = path.split(".");
  let o = doc;
  for (const k of keys.slice(0, -1)) o = (o[k] ||= {});
  o[keys[keys.length - 1]] = value;
}

/** Every leaf of a document as dotted path -> JSON text (for a version's changes). */
function flatten(doc, prefix = "", out = new Map()) {
  for (const [k, v] of Object.entries(doc || {})) {
    const p = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, p, out);
    else out.set(p, JSON.stringify(v));
  }
  return out;
}

export function diffDocs(before, after) {
  const a = flatten(before);
  const b = flatten(after);
  const out = [];
  for (const p of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(p) !== b.get(p)) out.push({ path: p, before: a.get(p), after: b.get(p) });
  }
  return out.sort((x, y) => x.path.localeCompare(y.path));
}

export function createSettings({ api, detailOf, announce }) {
  let perms = new Set();
  let current = null; // the SettingsOut the forms were filled from
  let built = false;
  const can = (p) => perms.has(p);
  const picker = createPlacePicker({
    api,
    ids: { input: "set-place", datalist: "set-places", list: idOf("location.same_codes"), error: `${idOf("location.same_codes")}-error` },
    emptyText: "No county or state: the station serves no area yet.",
    editable: () => can("settings:write"),
  });

  // ---- forms ----------------------------------------------------------------------------

  function control(f, section) {
    const id = idOf(f.path);
    const err = `${id}-error`;
    const common = { id, name: f.path, "aria-describedby": err, "data-path": f.path };
    let input;
    if (f.kind === "bool") {
      input = h("input", { ...common, type: "checkbox" });
      return h("div", { class: "field check", dataset: { field: f.path } },
        h("label", { for: id }, input, ` ${f.label}`), h("p", { id: err, class: "field-error" }));
    }
    if (f.kind === "multi") {
      return h("fieldset", { class: "field multi", id, "data-path": f.path, "aria-describedby": err },
        h("legend", {}, f.label),
        f.options.map(([value, text]) => h("label", {},
          h("input", { type: "checkbox", value, name: f.path }), ` ${text}`)),
        h("p", { id: err, class: "field-error" }));
    }
    if (f.kind === "places") return placesControl(f, id, err);
    if (f.kind === "select") {
      input = h("select", common, f.options.map(([value, text]) => h("option", { value }, text)));
    } else if (f.kind === "int" || f.kind === "number") {
      input = h("input", { ...common, type: "number", min: f.min, max: f.max, step: f.step || 1, inputmode: f.kind === "int" ? "numeric" : "decimal" });
    } else if (f.kind === "secret") {
      input = h("input", { ...common, type: "password", autocomplete: "new-password" });
    } else {
      input = h("input", { ...common, type: "text", maxlength: f.max || 500, autocomplete: "off", list: f.list, pattern: f.pattern, spellcheck: "false" });
    }
    return h("div", { class: "field", dataset: { field: f.path, section } },
      h("label", { for: id }, f.label), input,
      f.kind === "secret" ? h("p", { class: "meta", id: `${id}-state` }) : null,
      h("p", { id: err, class: "field-error" }));
  }

  function placesControl(f, id, err) {
    const input = h("input", {
      id: "set-place", list: "set-places", autocomplete: "off", maxlength: "64",
      "aria-describedby": `set-place-hint ${err}`, "data-path": f.path,
    });
    picker.attach(input);
    return h("div", { class: "field places", dataset: { field: f.path } },
      h("p", { class: "label" }, f.label),
      h("ul", { id, class: "locations", "aria-label": f.label }),
      h("div", { "data-perm": "settings:write" },
        h("label", { for: "set-place" }, "Add a county or a state by name"),
        h("div", { class: "actions" }, input, h("datalist", { id: "set-places" }),
          h("button", { type: "button", id: "set-place-add", onclick: picker.add }, "Add to the area")),
        h("p", { id: "set-place-hint", class: "meta" }, "Type two letters of its name, pick it, then Add.")),
      h("p", { id: err, class: "field-error" }));
  }

  function build() {
    if (built) return;
    built = true;
    const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
    const root = clear($("settings-forms"));
    root.appendChild(h("datalist", { id: "set-zones" }, zones.map((z) => h("option", { value: z }))));
    for (const s of SECTIONS) {
      const form = h("form", { id: `set-form-${s.key}`, class: "panel settings-form", novalidate: true, "aria-labelledby": `set-title-${s.key}` },
        h("h3", { id: `set-title-${s.key}` }, s.title),
        h("p", { id: `set-${s.key}-error`, class: "field-error section-error" }),
        h("div", { class: "settings-fields" }, s.fields.map((f) => control(f, s.key))),
        h("div", { class: "actions", "data-perm": "settings:write" },
          h("label", { for: `set-comment-${s.key}` }, "Why (optional, kept with the version)"),
          h("input", { id: `set-comment-${s.key}`, maxlength: "500", autocomplete: "off" }),
          h("button", { type: "submit", class: "primary" }, `Save ${s.title.toLowerCase()}`)),
        h("p", { id: `set-${s.key}-result`, class: "result", role: "status" }));
      form.addEventListener("submit", (ev) => { ev.preventDefault(); save(s); });
      root.appendChild(form);
    }
  }

  function fill(doc) {
    for (const s of SECTIONS) {
      for (const f of s.fields) {
        const value = get(doc.settings, f.path);
        const id = idOf(f.path);
        if (f.kind === "places") {
          picker.set(value || [], doc.location_names);
        } else if (f.kind === "bool") $(id).checked = Boolean(value);
        else if (f.kind === "multi") {
          for (const box of $(id).querySelectorAll("input[type=checkbox]")) box.checked = (value || []).includes(box.value);
        } else if (f.kind === "codes") $(id).value = (value || []).join(" ");
        else if (f.kind === "secret") {
          $(id).value = "";
          const set = get(doc.settings, `${f.path}_set`);
          $(`${id}-state`).textContent = set ? "A value is stored (never shown)." : "Not set.";
        } else $(id).value = value === null || value === undefined ? "" : String(value);
      }
    }
    const write = can("settings:write");
    for (const el of $("settings-forms").querySelectorAll("input, select, textarea")) {
      if (el.id !== "set-place" && !el.id.startsWith("set-comment-")) el.disabled = !write;
    }
    for (const el of $("view-settings").querySelectorAll("[data-perm]")) el.hidden = !can(el.dataset.perm);
    $("settings-version").textContent = doc.version
      ? `Version ${doc.version}, saved ${formatDateTime(doc.saved_at)} by ${doc.saved_by || "?"} (${doc.action || "update"}).`
      : "Version 0: the defaults, never saved.";
  }

  function sectionValue(s) {
    const out = {};
    for (const f of s.fields) {
      const id = idOf(f.path);
      const rel = f.path.slice(s.key.length + 1);
      let value;
      if (f.kind === "places") value = [...picker.chosen.keys()];
      else if (f.kind === "bool") value = $(id).checked;
      else if (f.kind === "multi") {
        // The stored order kept (a list in another order is a change in the history).
        const on = new Set([...$(id).querySelectorAll("input:checked")].map((b) => b.value));
        const was = (current && get(current.settings, f.path)) || [];
        value = [...was.filter((v) => on.has(v)), ...f.options.map(([v]) => v).filter((v) => on.has(v) && !was.includes(v))];
      }
      else if (f.kind === "codes") {
        const text = $(id).value.trim();
        value = text ? text.split(/[\s,]+/).map((c) => (f.upper ? c.toUpperCase() : c)) : [];
      } else if (f.kind === "int" || f.kind === "number") {
        // The API names a blank or malformed number at its field; send it as typed.
        const text = $(id).value.trim();
        value = text === "" ? null : Number(text);
        if (Number.isNaN(value)) value = text;
      } else if (f.kind === "select" && f.int) {
        value = Number($(id).value);
      } else if (f.kind === "secret") {
        if (!$(id).value) continue; // blank keeps the stored secret (omitted from the patch)
        value = $(id).value;
      } else {
        value = $(id).value;
        if (f.nullable && value.trim() === "") value = null;
      }
      put(out, rel, value);
    }
    return out;
  }

  function clearErrors(form) {
    for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  /** Each 422 problem at its field: settings.relay.delay_s -> the delay field; a list item
   * (….events.1) at its list; a whole-section rule (settings.relay) at the section. */
  function showErrors(s, r) {
    const detail = Array.isArray(r.doc && r.doc.detail) ? r.doc.detail : [];
    let first = null;
    for (const e of detail) {
      const loc = (e.loc || []).filter((p) => typeof p === "string");
      const start = loc.indexOf("patch") >= 0 ? loc.indexOf("patch") + 1 : loc.indexOf("settings") + 1;
      const parts = loc.slice(Math.max(start, 0));
      let slot = null;
      let target = null;
      while (parts.length && !slot) {
        const path = parts.join(".");
        const field = SECTIONS.flatMap((x) => x.fields).find((f) => f.path === path);
        if (field) {
          slot = $(`${idOf(path)}-error`);
          target = field.kind === "places" ? $("set-place") : $(idOf(path));
        } else if (path === s.key || SECTIONS.some((x) => x.key === path)) {
          slot = $(`set-${path}-error`);
        }
        parts.pop();
      }
      slot ||= $(`set-${s.key}-error`);
      slot.textContent = slot.textContent ? `${slot.textContent} ${e.msg}` : e.msg;
      if (target) {
        target.setAttribute("aria-invalid", "true");
        first ||= target;
      }
    }
    if (!detail.length) $(`set-${s.key}-error`).textContent = detailOf(r);
    const problems = detail.length;
    announce(`Not saved: ${problems || 1} ${problems > 1 ? "fields need" : "field needs"} a change.`, false);
    if (first) first.focus();
  }

  async function save(s) {
    const form = $(`set-form-${s.key}`);
    clearErrors(form);
    $(`set-${s.key}-result`).textContent = "";
    const comment = $(`set-comment-${s.key}`).value.trim();
    const r = await api("/api/settings", {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ patch: { [s.key]: sectionValue(s) }, base_version: current ? current.version : null, comment: comment || null }),
    });
    if (r.status === 422) {
      showErrors(s, r);
      return;
    }
    if (r.status === 409) {
      $(`set-${s.key}-error`).textContent = "Someone saved the settings since this screen loaded them: reload the screen (your changes here are not saved).";
      return;
    }
    if (!r.ok) {
      $(`set-${s.key}-error`).textContent = `Not saved: ${detailOf(r)}`;
      return;
    }
    $(`set-comment-${s.key}`).value = "";
    await load(perms);
    $(`set-${s.key}-result`).textContent = r.doc.changed
      ? `Saved as version ${r.doc.version}.`
      : "Nothing changed: no new version.";
  }

  // ---- versions, rollback, export, import ----------------------------------------------

  async function loadVersions() {
    const list = clear($("settings-versions"));
    const r = await api("/api/settings/versions?limit=20");
    if (!r.ok) {
      $("settings-error").textContent = `Could not load the versions: ${detailOf(r)}`;
      return;
    }
    $("settings-versions-empty").hidden = r.doc.items.length > 0;
    for (const v of r.doc.items) list.appendChild(versionItem(v));
  }

  function versionItem(v) {
    const changes = h("div", { class: "changes", id: `set-changes-${v.version}` });
    const isCurrent = current && v.version === current.version;
    return h("li", { class: "card version", dataset: { version: String(v.version) } },
      h("div", { class: "row" },
        h("h4", {}, `Version ${v.version}`),
        h("span", { class: "pill" }, v.action || "update"),
        isCurrent ? h("span", { class: "pill ok" }, "current") : null,
        h("time", { datetime: v.saved_at || "" }, formatDateTime(v.saved_at)),
        h("span", {}, `by ${v.saved_by || "?"}`)),
      h("p", { class: "meta" }, `sections: ${(v.sections || []).join(", ") || "none"}${v.comment ? ` · “${v.comment}”` : ""}`),
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => showChanges(v, changes) }, `Show the changes of version ${v.version}`),
        can("settings:write") && !isCurrent
          ? h("button", { type: "button", class: "danger", onclick: () => rollback(v.version) }, `Roll back to version ${v.version}`)
          : null),
      changes);
  }

  async function versionDoc(n) {
    if (!n) return { settings: {} };
    const r = await api(`/api/settings/versions/${n}`);
    return r.ok ? r.doc : null;
  }

  async function showChanges(v, box) {
    clear(box).appendChild(h("p", { class: "meta" }, "Loading…"));
    const before = v.based_on ?? (v.version > 1 ? v.version - 1 : null);
    const [a, b] = await Promise.all([versionDoc(before), versionDoc(v.version)]);
    clear(box);
    if (!a || !b) {
      box.appendChild(h("p", { class: "error" }, "Could not load the versions to compare."));
      return;
    }
    const diff = diffDocs(a.settings, b.settings);
    if (!diff.length) {
      box.appendChild(h("p", { class: "meta" }, `No change from version ${before || 0}.`));
      return;
    }
    box.appendChild(h("table", { class: "log-table diff" },
      h("caption", {}, `Changed from version ${before || "0 (defaults)"}`),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Setting"), h("th", { scope: "col" }, "Before"), h("th", { scope: "col" }, "After"))),
      h("tbody", {}, diff.map((d) => h("tr", {},
        h("th", { scope: "row" }, h("code", {}, d.path)),
        h("td", {}, h("code", {}, d.before ?? "—")),
        h("td", {}, h("code", {}, d.after ?? "—")))))));
  }

  async function rollback(version) {
    $("settings-error").textContent = "";
    const r = await api("/api/settings/rollback", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ to_version: version, base_version: current ? current.version : null }),
    });
    if (!r.ok) {
      $("settings-error").textContent = `Not rolled back: ${detailOf(r)}`;
      return;
    }
    await load(perms);
    $("settings-result").textContent = `Version ${version} is current again, as version ${r.doc.version}.`;
  }

  async function importFile(ev) {
    ev.preventDefault();
    $("set-import-error").textContent = "";
    $("settings-result").textContent = "";
    const file = $("set-import-file").files[0];
    if (!file) {
      $("set-import-error").textContent = "Choose an exported settings file (.json) first.";
      $("set-import-file").setAttribute("aria-invalid", "true");
      return;
    }
    $("set-import-file").removeAttribute("aria-invalid");
    let body;
    try {
      body = JSON.stringify(JSON.parse(await file.text()));
    } catch (_) {
      $("set-import-error").textContent = `${file.name} is not a JSON document.`;
      return;
    }
    const r = await api("/api/settings/import", { method: "POST", headers: { "Content-Type": "application/json" }, body });
    if (!r.ok) {
      const d = Array.isArray(r.doc && r.doc.detail) ? r.doc.detail : null;
      $("set-import-error").textContent = d
        ? `Not imported: ${d.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".")}: ${e.msg}`).join("; ")}`
        : `Not imported: ${detailOf(r)}`;
      $("set-import-file").setAttribute("aria-invalid", "true");
      return;
    }
    await load(perms);
    $("settings-result").textContent = r.doc.changed ? `Imported as version ${r.doc.version}.` : "The file equals the current settings: nothing changed.";
  }

  async function load(permissions) {
    perms = permissions;
    build();
    $("settings-error").textContent = "";
    $("settings-result").textContent = "";
    const r = await api("/api/settings");
    if (!r.ok) {
      $("settings-error").textContent = `Could not load the settings: ${detailOf(r)}`;
      return;
    }
    current = r.doc;
    fill(r.doc);
    await loadVersions();
  }

  $("set-import").addEventListener("submit", importFile);

  return {
    load,
    /** Another save (by anyone) arrived over /ws: the history shows it; the forms keep what
     * is being typed, and a save from them is refused (409) with that said. */
    onChanged(data) {
      if (!current || !data || typeof data.version !== "number" || data.version <= current.version) return;
      $("settings-result").textContent = `Version ${data.version} was saved (${(data.sections || []).join(", ")}) since this screen loaded: reload it to see it.`;
      loadVersions();
    },
  };
}

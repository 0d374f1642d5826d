// The county / state picker that the Settings area and the origination form share: type two
// letters of a name, pick it from the list station-api's /api/reference/locations fills, Add.
// The chosen places keep the order they were added in (the SAME header lists them so).

import { clear, h } from "./ui.js";

const $ = (id) => document.getElementById(id);

/**
 * ids: { input, datalist, list, error } element ids (looked up when used: the settings form
 * is drawn after the picker is made). max/maxMessage: a limit on the number of places;
 * emptyText: the list's line when nothing is chosen; editable(): whether remove buttons show.
 */
export function createPlacePicker({ api, ids, max = Infinity, maxMessage = "", emptyText = null, editable = () => true }) {
  const found = new Map(); // datalist text -> {code, name}
  const chosen = new Map(); // SAME code -> name, in the order added
  let timer = null;

  function find() {
    clearTimeout(timer);
    const q = $(ids.input).value.trim();
    if (q.length < 2 || found.has(q)) return;
    // Only after the typing pauses: one lookup per word, not per key.
    timer = setTimeout(async () => {
      const r = await api(`/api/reference/locations?${new URLSearchParams({ q, limit: "20" })}`);
      if (!r.ok) return;
      const list = clear($(ids.datalist));
      for (const loc of r.doc) {
        const text = `${loc.name} (${loc.code})`;
        found.set(text, loc);
        list.appendChild(h("option", { value: text }));
      }
    }, 200);
  }

  function add() {
    const input = $(ids.input);
    const error = $(ids.error);
    const loc = found.get(input.value.trim());
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    if (!loc) {
      error.textContent = "Pick a county or state from the list (type two letters of its name).";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    if (chosen.size >= max) {
      error.textContent = maxMessage;
      return;
    }
    chosen.set(loc.code, loc.name);
    input.value = "";
    render();
    input.focus();
  }

  function render() {
    const list = clear($(ids.list));
    if (!chosen.size && emptyText) list.appendChild(h("li", { class: "meta" }, emptyText));
    const removable = editable();
    for (const [code, name] of chosen) {
      list.appendChild(h("li", { class: "pill" }, `${name} `, h("code", {}, code), removable ? [" ",
        h("button", {
          type: "button", class: "remove", "aria-label": `Remove ${name}`,
          onclick: () => { chosen.delete(code); render(); $(ids.input).focus(); },
        }, "×")] : null));
    }
  }

  /** Replace the chosen places (codes, with their names where known). */
  function set(codes, names = {}) {
    chosen.clear();
    for (const code of codes) chosen.set(code, names[code] || code);
    render();
  }

  /** Typing looks places up, Enter adds. */
  function attach(input) {
    input.addEventListener("input", find);
    input.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); add(); } });
  }

  return { chosen, add, render, set, attach };
}

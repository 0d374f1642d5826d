// The map of the active alerts, drawn as SVG from the station's own files: U.S. Census county
// and state shapes (us-atlas counties-10m.json) through topojson-client and d3-geo, which
// scripts/setup.sh copies from npm into /static/vendor. No tiles and nothing from elsewhere:
// the page's CSP (script-src 'self', connect-src 'self') holds. Without those files the map
// says so and the alert list below it still works.
//
// What is drawn for an alert: its CAP polygons and circles (the alerts API's GeoJSON, circles
// already as 32-gons); else the counties its SAME codes name (PSSCCC; county 000 is the whole
// state) and its UGC county codes (XXCnnn). UGC zones (XXZnnn) are NWS forecast zones, whose
// shapes are not in the Census data: they are listed as not drawn, never guessed at.

import { SEVERITY_RANK, clear, h, severityClass } from "./ui.js";

const VENDOR = "/static/vendor";
const SCRIPTS = ["d3-array.min.js", "d3-geo.min.js", "topojson-client.min.js"];
const WIDTH = 975;
const HEIGHT = 610;
const SVG = "http://www.w3.org/2000/svg";

// Postal abbreviation -> state FIPS, for UGC codes (the one table is
// eas_schemas.same_codes.STATE_FIPS; a unit test keeps this copy equal to it).
export const STATE_FIPS = {
  AL: "01", AK: "02", AZ: "04", AR: "05", CA: "06", CO: "08", CT: "09", DE: "10", DC: "11",
  FL: "12", GA: "13", HI: "15", ID: "16", IL: "17", IN: "18", IA: "19", KS: "20", KY: "21",
  LA: "22", ME: "23", MD: "24", MA: "25", MI: "26", MN: "27", MS: "28", MO: "29", MT: "30",
  NE: "31", NV: "32", NH: "33", NJ: "34", NM: "35", NY: "36", NC: "37", ND: "38", OH: "39",
  OK: "40", OR: "41", PA: "42", RI: "44", SC: "45", SD: "46", TN: "47", TX: "48", UT: "49",
  VT: "50", VA: "51", WA: "53", WV: "54", WI: "55", WY: "56", AS: "60", FM: "64", GU: "66",
  MH: "68", MP: "69", PW: "70", PR: "72", UM: "74", VI: "78",
};

let atlas = null; // the promise of the loaded shapes, shared by every map on the page

function loadScript(name) {
  return new Promise((resolve, reject) => {
    const el = document.createElement("script");
    el.src = `${VENDOR}/${name}`;
    el.async = false;
    el.onload = () => resolve();
    el.onerror = () => reject(new Error(`${name} not found`));
    document.head.appendChild(el);
  });
}

async function loadAtlasOnce() {
  for (const name of SCRIPTS) await loadScript(name);
  const r = await fetch(`${VENDOR}/counties-10m.json`, { credentials: "same-origin" });
  if (!r.ok) throw new Error(`counties-10m.json: HTTP ${r.status}`);
  const topo = await r.json();
  const { d3, topojson } = window;
  const counties = new Map();
  for (const f of topojson.feature(topo, topo.objects.counties).features) counties.set(String(f.id), f);
  const states = new Map();
  for (const f of topojson.feature(topo, topo.objects.states).features) states.set(String(f.id), f);
  const nation = topojson.feature(topo, topo.objects.nation);
  const projection = d3.geoAlbersUsa().fitSize([WIDTH, HEIGHT], nation);
  const geoPath = d3.geoPath(projection);
  // A Census shape's SVG path never changes: made once, not on every redraw.
  const known = new Map();
  for (const f of [...counties.values(), ...states.values()]) known.set(f, null);
  const path = (feature) => {
    if (!known.has(feature)) return geoPath(feature);
    if (known.get(feature) === null) known.set(feature, geoPath(feature));
    return known.get(feature);
  };
  // County lines within a state only: state lines are drawn over them, thicker.
  const countyLines = topojson.mesh(topo, topo.objects.counties, (a, b) => a !== b && String(a.id).slice(0, 2) === String(b.id).slice(0, 2));
  return {
    d3,
    bounds: (feature) => geoPath.bounds(feature),
    path,
    counties,
    states,
    base: {
      land: geoPath(nation),
      counties: geoPath(countyLines),
      states: geoPath(topojson.mesh(topo, topo.objects.states, (a, b) => a !== b)),
    },
  };
}

export function loadAtlas() {
  atlas ||= loadAtlasOnce();
  return atlas;
}

/** The county or state shape a SAME code (PSSCCC) names, and what it is called on the map. */
function sameShape(geo, code) {
  const c = String(code).padStart(6, "0");
  const stateFips = c.slice(1, 3);
  if (c.slice(3) === "000") return geo.states.get(stateFips) || null;
  return geo.counties.get(c.slice(1)) || null;
}

/** A UGC county (XXCnnn) as its county shape; a zone (XXZnnn) has none in the Census data. */
function ugcShape(geo, code) {
  const m = /^([A-Z]{2})([CZ])(\d{3})$/.exec(String(code).toUpperCase());
  if (!m) return { shape: null, zone: false };
  if (m[2] === "Z") return { shape: null, zone: true };
  const fips = STATE_FIPS[m[1]];
  if (!fips) return { shape: null, zone: false };
  if (m[3] === "000") return { shape: geo.states.get(fips) || null, zone: false };
  return { shape: geo.counties.get(fips + m[3]) || null, zone: false };
}

/** d3-geo takes the smaller side of a ring as its inside only when the ring is clockwise;
 * GeoJSON (RFC 7946) rings, as the alerts API gives them, are counterclockwise. A polygon
 * drawn as larger than a hemisphere is one whose rings run the other way: reverse them. */
function d3Winding(d3, geometry) {
  const fixed = { type: "MultiPolygon", coordinates: geometry.coordinates.map((poly) => poly.map((ring) => ring.slice())) };
  fixed.coordinates = fixed.coordinates.map((poly) => {
    const one = { type: "Polygon", coordinates: poly };
    return d3.geoArea(one) > 2 * Math.PI ? poly.map((ring) => ring.slice().reverse()) : poly;
  });
  return fixed;
}

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  return el;
}

/** The viewBox around the shapes (in the map's own units), padded and never narrower than
 * about a state, with the map's aspect ratio; null when nothing is drawn. */
function extent(geo, shapes) {
  let x0 = Infinity; let y0 = Infinity; let x1 = -Infinity; let y1 = -Infinity;
  for (const s of shapes) {
    const d = geo.path(s.feature);
    if (!d) continue;
    const [[a, b], [c, e]] = geo.bounds(s.feature);
    if (![a, b, c, e].every(Number.isFinite)) continue;
    x0 = Math.min(x0, a); y0 = Math.min(y0, b); x1 = Math.max(x1, c); y1 = Math.max(y1, e);
  }
  if (!Number.isFinite(x0)) return null;
  const minW = WIDTH / 14;
  let w = Math.max(x1 - x0, minW) * 1.3;
  let hgt = Math.max(y1 - y0, minW * (HEIGHT / WIDTH)) * 1.3;
  if (w / hgt < WIDTH / HEIGHT) w = hgt * (WIDTH / HEIGHT); else hgt = w * (HEIGHT / WIDTH);
  if (w >= WIDTH) return null;
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const round = (v) => Math.round(v * 10) / 10;
  return [round(cx - w / 2), round(cy - hgt / 2), round(w), round(hgt)];
}

/** How an alert is drawn: shapes (each {feature, kind}) and what could not be drawn. */
export function shapesOf(geo, alert, geometry) {
  const shapes = [];
  const zones = [];
  const unknown = [];
  if (geometry && Array.isArray(geometry.coordinates) && geometry.coordinates.length) {
    shapes.push({ kind: "polygon", feature: { type: "Feature", geometry: d3Winding(geo.d3, geometry) } });
    return { shapes, zones, unknown, from: "polygon" };
  }
  const seen = new Set();
  for (const code of alert.same_codes || []) {
    const f = sameShape(geo, code);
    if (f && !seen.has(f)) { seen.add(f); shapes.push({ kind: "same", feature: f, code }); } else if (!f) unknown.push(code);
  }
  for (const code of alert.ugc_codes || []) {
    const { shape, zone } = ugcShape(geo, code);
    if (shape && !seen.has(shape)) { seen.add(shape); shapes.push({ kind: "ugc", feature: shape, code }); } else if (zone) zones.push(code);
    else if (!shape) unknown.push(code);
  }
  return { shapes, zones, unknown, from: shapes.length ? "codes" : "none" };
}

/**
 * A map in `root`: `update(alerts)` redraws from the page's alerts (id -> alert),
 * `setArea({same_codes, ugc_codes} | null)` the station's area (null: not readable).
 * Polygons come from the alerts API as GeoJSON (`?format=geojson`), fetched again only when
 * an alert the map has not seen arrives.
 */
export function createAlertMap({ root, api, detailOf, onOpen, titleId }) {
  let alerts = new Map();
  let area = undefined; // undefined: not known yet; null: the role may not read the settings
  const geometries = new Map(); // alert id -> GeoJSON geometry or null (no polygon or circle)
  let fetching = null;
  let visible = false;
  let drawn = null; // the atlas once loaded
  let failed = "";

  const status = h("p", { class: "map-status", role: "status" });
  const figure = h("div", { class: "map-figure" });
  const legend = h("ul", { class: "map-legend", "aria-label": "Alerts on the map" });
  const key = h("p", { class: "map-key meta" },
    h("span", { class: "swatch station-area", "aria-hidden": "true" }), " the station's area ",
    ...["extreme", "severe", "moderate", "minor", "unknown"].map((s) => [
      h("span", { class: `swatch sev-${s}`, "aria-hidden": "true" }), ` ${s} `]));
  clear(root).append(status, figure, key, legend);

  let whole = false; // the operator asked for the whole country instead of the alerts' extent
  const zoom = h("button", { type: "button", class: "map-zoom", hidden: true, onclick: () => { whole = !whole; render(); } }, "Show the whole country");
  root.insertBefore(h("div", { class: "actions" }, zoom), figure);

  async function fetchGeometries() {
    let cursor = null;
    let pages = 0;
    const got = new Map();
    do {
      const q = new URLSearchParams({ status: "active", limit: "500", format: "geojson" });
      if (cursor) q.set("cursor", cursor);
      const r = await api(`/api/alerts?${q}`);
      if (!r.ok) {
        status.textContent = `Could not load the alerts' shapes: ${detailOf(r)}`;
        return;
      }
      for (const f of r.doc.features || []) got.set(f.id, f.geometry || null);
      cursor = r.doc.next_cursor;
      pages += 1;
    } while (cursor && pages < 20);
    for (const [id, g] of got) geometries.set(id, g);
    // An alert the list knows and the feature collection did not have (it ended meanwhile):
    // remember it has no shape so it is not fetched for again and again.
    for (const id of alerts.keys()) if (!geometries.has(id)) geometries.set(id, null);
  }

  function ensureGeometries() {
    if ([...alerts.keys()].every((id) => geometries.has(id))) return Promise.resolve();
    fetching ||= fetchGeometries().finally(() => { fetching = null; });
    return fetching;
  }

  function areaShapes(geo) {
    if (!area) return [];
    return shapesOf(geo, area, null).shapes;
  }

  function draw() {
    if (!visible) return;
    if (failed) return;
    if (!drawn) {
      status.textContent = "Loading the map…";
      loadAtlas().then((geo) => { drawn = geo; draw(); }, (err) => {
        failed = String(err.message || err);
        status.textContent = `Map data not installed on this station (${failed}): run scripts/setup.sh. The alerts are listed below.`;
        root.dataset.state = "missing";
        clear(figure);
        drawLegend(null);
      });
      drawLegend(null);
      return;
    }
    ensureGeometries().then(render);
  }

  function render() {
    const geo = drawn;
    const map = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "alert-map", "aria-labelledby": titleId, role: "group" });
    map.append(
      svg("path", { class: "land", d: geo.base.land }),
      svg("path", { class: "county-lines", d: geo.base.counties }),
      svg("path", { class: "state-lines", d: geo.base.states }));
    const mine = svg("g", { class: "station-area-layer" });
    for (const s of areaShapes(geo)) mine.append(svg("path", { class: "station-area", d: geo.path(s.feature) }));
    const layer = svg("g", { class: "alerts-layer" });
    // Most severe last, so it is drawn on top.
    const ordered = [...alerts.values()].sort((a, b) => (SEVERITY_RANK[a.severity] ?? 0) - (SEVERITY_RANK[b.severity] ?? 0));
    const plans = new Map();
    for (const a of ordered) {
      const plan = shapesOf(geo, a, geometries.get(a.id));
      plans.set(a.id, plan);
      for (const s of plan.shapes) {
        const d = geo.path(s.feature);
        if (!d) continue; // outside the projection (a territory Albers USA does not show)
        const p = svg("path", {
          class: `alert-shape ${severityClass(a.severity)}`, d,
          "data-alert-id": a.id, "data-kind": s.kind,
        });
        const title = svg("title");
        title.textContent = `${a.event} (${a.severity || "Unknown"})${s.code ? `: ${s.code}` : ""}`;
        p.append(title);
        p.addEventListener("click", () => onOpen(a.id));
        layer.append(p);
      }
    }
    map.append(layer, mine);
    const view = whole ? null : extent(geo, [...plans.values()].flatMap((p) => p.shapes).concat(areaShapes(geo)));
    if (view) map.setAttribute("viewBox", view.join(" "));
    zoom.textContent = whole ? "Zoom to the alerts" : "Show the whole country";
    zoom.hidden = !view && !whole;
    clear(figure).append(map);
    root.dataset.state = "drawn";
    const areaText = area === null
      ? "The station's area is not shown: your role may not read the station's settings."
      : area && !(area.same_codes || []).length && !(area.ugc_codes || []).length
        ? "The station has no area set (Settings, location)."
        : "";
    status.textContent = areaText;
    drawLegend(plans);
  }

  function drawLegend(plans) {
    clear(legend);
    const ordered = [...alerts.values()].sort((a, b) => (SEVERITY_RANK[b.severity] ?? 0) - (SEVERITY_RANK[a.severity] ?? 0));
    for (const a of ordered) {
      const plan = plans && plans.get(a.id);
      const notes = [];
      if (plan) {
        if (plan.from === "polygon") notes.push("drawn from its polygon");
        else if (plan.from === "codes") notes.push(`drawn from ${plan.shapes.length} ${plan.shapes.length === 1 ? "county or state" : "counties or states"} its codes name`);
        else notes.push("nothing to draw");
        if (plan.zones.length && plan.from !== "polygon") notes.push(`forecast zones ${plan.zones.join(" ")} not drawn: the map has no zone shapes`);
        if (plan.unknown.length && plan.from !== "polygon") notes.push(`codes not on the map: ${plan.unknown.join(" ")}`);
      }
      legend.append(h("li", { class: `map-item ${severityClass(a.severity)}`, dataset: { alertId: String(a.id) } },
        h("span", { class: "sev" }, a.severity || "Unknown"), " ",
        h("button", { type: "button", class: "open", "aria-haspopup": "dialog", onclick: () => onOpen(a.id) }, a.event),
        " ", h("span", { class: "meta" }, a.area_desc || ""),
        notes.length ? h("span", { class: "meta map-note" }, ` — ${notes.join("; ")}`) : null));
    }
    if (!alerts.size) legend.append(h("li", { class: "empty" }, "No active alerts."));
  }

  return {
    update(next) {
      alerts = new Map(next);
      for (const id of geometries.keys()) if (!alerts.has(id)) geometries.delete(id);
      draw();
    },
    setArea(next) {
      area = next;
      draw();
    },
    show(on) {
      visible = on;
      draw();
    },
  };
}

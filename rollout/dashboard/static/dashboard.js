// rollout dashboard: polls the JSON API of this server and draws every chart as inline SVG.
// No library, no CDN: the page works offline. Values from the state folder are only ever set as
// text (textContent), never as HTML.
"use strict";

const POLL_MS = 2000;
const MAX_POINTS = 600; // per plot: about one per pixel column; the API thins longer series
const SVG_NS = "http://www.w3.org/2000/svg";
let selected = decodeURIComponent(location.hash.slice(1)) || null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function setText(id, text) {
  document.getElementById(id).textContent = text === null || text === undefined ? "" : String(text);
}

function badge(text, kind) {
  return el("span", { class: "badge " + (kind || text) }, text);
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (body.error && body.error.message) || response.status + " " + response.statusText;
    throw new Error(message);
  }
  return body;
}

// -- formatting ------------------------------------------------------------------------------
function fmt(unit, per, v) {
  if (v === null || v === undefined || !isFinite(v)) return "n/a";
  if (unit === "ratio") return (v * 100).toFixed(Math.abs(v) < 0.1 ? 2 : 1) + "%";
  if (unit === "s") return v.toFixed(2) + "s";
  if (unit === "usd_per_day" || unit === "usd_per_window" || unit === "usd") {
    return "$" + v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 }) + (per || "");
  }
  if (unit === "tokens") return Math.round(v).toLocaleString("en-US");
  return Number(v.toPrecision(4)).toString();
}

function clock(t) {
  return new Date(t * 1000).toISOString().slice(11, 19);
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return Math.round(s) + "s ago";
  if (s < 5400) return Math.round(s / 60) + "m ago";
  return (s / 3600).toFixed(1) + "h ago";
}

function duration(s) {
  s = Math.round(s);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
}

function hostCounts(byState) {
  const parts = [];
  for (const [state, n] of Object.entries(byState || {})) if (n) parts.push(state + " " + n);
  return parts.join(", ");
}

// -- the rollouts list ------------------------------------------------------------------------
function drawList(data) {
  setText("state-dir", data.state_dir);
  setText("list-note", data.note || (data.rollouts.length ? "" : "no rollouts in this state folder yet"));
  const body = document.querySelector("#rollouts tbody");
  body.replaceChildren();
  for (const r of data.rollouts) {
    if (r.error) {
      body.append(el("tr", { class: "error-row", "data-id": r.id }, el("td", {}, r.id), el("td", { colspan: 4 }, "unreadable: " + r.error)));
      continue;
    }
    const row = el(
      "tr",
      { class: "selectable" + (r.id === selected ? " selected" : ""), "data-id": r.id },
      el("td", {}, el("b", {}, r.name), el("br"), el("span", { class: "muted" }, r.id)),
      el("td", {}, badge(r.state), r.paused ? " " : null, r.paused ? badge("paused") : null),
      el("td", { class: "num" }, r.stage),
      el("td", {}, hostCounts(r.hosts_by_state)),
      el("td", {}, r.last_decision ? badge(r.last_decision) : "-"),
    );
    row.addEventListener("click", () => {
      selected = r.id;
      location.hash = encodeURIComponent(r.id);
      refresh();
    });
    body.append(row);
  }
}

function pick(rollouts) {
  const readable = rollouts.filter((r) => !r.error);
  if (selected && rollouts.some((r) => r.id === selected)) return selected;
  const active = readable.filter((r) => r.active);
  const chosen = active.length ? active[active.length - 1] : readable[readable.length - 1];
  return chosen ? chosen.id : null;
}

// -- one rollout ------------------------------------------------------------------------------
function drawDetail(s) {
  document.getElementById("detail").hidden = false;
  const title = document.getElementById("rollout-id");
  title.replaceChildren(s.name, " ", el("span", { class: "muted id" }, s.id));
  const state = document.getElementById("rollout-state");
  state.textContent = s.state + (s.paused ? " (paused)" : "");
  state.className = "badge " + s.state;
  setText("rollout-stage", "stage " + s.stage + (s.percent ? " (" + s.percent + "% live)" : ""));
  const timing = [];
  if (s.paused) timing.push("paused by " + s.paused.operator + ": " + s.paused.reason);
  if (s.bake_left_s) timing.push("bake " + duration(s.bake_left_s) + " left");
  if (s.active && s.next_check_at) {
    if (s.driven) timing.push("next check " + clock(s.next_check_at) + " UTC");
    else if (s.next_check_at * 1000 > Date.now()) timing.push("`rollout advance` may gate it at " + clock(s.next_check_at) + " UTC");
    else timing.push("bake over: `rollout advance` may gate it");
  }
  if (s.active) timing.push(s.driven ? "driven by run --auto" : "no run --auto drives it");
  timing.push("entered this stage " + ago(new Date(s.stage_entered_at * 1000).toISOString()));
  setText("rollout-timing", timing.join(" · "));
  setText("rollout-reason", s.reason ? "reason: " + s.reason : "");

  const counts = {};
  for (const h of Object.values(s.hosts)) counts[h.state] = (counts[h.state] || 0) + 1;
  const box = document.getElementById("host-counts");
  box.replaceChildren();
  for (const state of ["baseline", "shadow", "candidate", "drifted", "unknown", ...Object.keys(counts)]) {
    if (box.querySelector('[data-state="' + state + '"]')) continue;
    const n = counts[state] || 0;
    box.append(el("div", { class: "count " + state + (n ? "" : " zero"), "data-state": state }, el("b", {}, n), state));
  }
  const hosts = document.querySelector("#hosts tbody");
  hosts.replaceChildren();
  for (const [name, h] of Object.entries(s.hosts)) {
    hosts.append(el("tr", { "data-host": name }, el("td", {}, name), el("td", {}, badge(h.state, "host-" + h.state)), el("td", { class: "num muted" }, (h.sha256 || "(no file)").slice(0, 12)), el("td", { class: "why" }, h.reason || "")));
  }
  drawGate(s.last_verdict);
  const history = document.querySelector("#history tbody");
  history.replaceChildren();
  for (const e of s.history.slice(-15).reverse()) {
    history.append(el("tr", {}, el("td", { class: "num" }, e.time.replace("T", " ").slice(0, 19)), el("td", {}, e.stage || "-"), el("td", {}, e.event), el("td", { class: "muted" }, e.operator || "")));
  }
}

function drawGate(v) {
  const body = document.querySelector("#checks tbody");
  body.replaceChildren();
  if (!v) {
    setText("gate-decision", "no gate measured yet");
    setText("gate-look", "");
    return;
  }
  setText("gate-look", "(" + v.stage + (v.look ? ", look " + v.look + " of " + (v.planned_looks || "?") + " planned" : "") + ")");
  const decision = document.getElementById("gate-decision");
  decision.replaceChildren(badge(v.decision), " ", v.why);
  for (const m of grouped(v.measurements)) {
    const d = m.details || {};
    const shown = d.shown || {};
    const samples = d.samples !== undefined && d.samples !== null ? d.samples + (d.baseline_samples ? " / " + d.baseline_samples : "") : "";
    body.append(
      el("tr", { "data-check": m.check },
        el("td", {}, m.check + (m.host ? " @ " + m.host : ""), m.enforce ? null : el("span", { class: "muted" }, " (observe)")),
        el("td", {}, badge(m.outcome), m.hosts ? el("span", { class: "muted" }, " " + m.hosts) : null),
        el("td", { class: "num" }, shown.value || (d.value !== undefined && d.value !== null ? fmt("", "", d.value) : "-")),
        el("td", { class: "num" }, shown.baseline || (d.baseline !== undefined && d.baseline !== null ? fmt("", "", d.baseline) : "-")),
        el("td", {}, d.bound || ""),
        el("td", { class: "num" }, samples),
      ),
      el("tr", { class: "why-row" }, el("td", { class: "why", colspan: 6 }, m.why)),
    );
  }
}

function grouped(measurements) {
  // A host check measures every cohort host: one row per check, its worst outcome, the hosts counted.
  const rank = { fail: 0, error: 1, inconclusive: 2, pass: 3 };
  const rows = [];
  const byCheck = new Map();
  for (const m of measurements) {
    if (!m.host || (m.details && m.details.metric)) { rows.push(m); continue; }
    if (!byCheck.has(m.check)) { byCheck.set(m.check, []); rows.push({ check: m.check, group: byCheck.get(m.check) }); }
    byCheck.get(m.check).push(m);
  }
  return rows.map((row) => {
    if (!row.group) return row;
    const ms = row.group;
    const worst = ms.reduce((a, b) => ((rank[b.outcome] ?? 9) < (rank[a.outcome] ?? 9) ? b : a));
    const same = ms.filter((m) => m.outcome === worst.outcome).length;
    const hosts = same + "/" + ms.length + " hosts";
    const why = ms.length === 1 ? worst.host + ": " + worst.why : worst.outcome === "pass" ? worst.why : ms.filter((m) => m.outcome === worst.outcome).map((m) => m.host + ": " + m.why).join("; ");
    return { check: row.check, outcome: worst.outcome, enforce: worst.enforce, hosts, why, details: {} };
  });
}

// -- plots ------------------------------------------------------------------------------------
function drawPlots(series) {
  const box = document.getElementById("plots");
  box.replaceChildren();
  setText("plots-note", series.checks.length ? "" : "no metric check has measured this rollout yet");
  for (const check of series.checks) box.append(plot(check));
}

function plot(check) {
  const W = 620, H = 240, L = 78, R = 16, T = 14, B = 30;
  const pts = check.points;
  const f = (v) => fmt(check.unit, check.per, v);
  const values = [];
  for (const p of pts) for (const k of ["canary", "baseline", "max", "min", "regression_bound"]) if (p[k] !== null) values.push(p[k]);
  let lo = Math.min(...values), hi = Math.max(...values);
  if (check.unit === "ratio" || lo > 0) lo = Math.min(0, lo);
  if (hi === lo) hi = lo + (Math.abs(lo) || 1);
  const step = niceStep((hi - lo) / 4);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil((hi + (hi - lo) * 0.04) / step) * step;
  let t0 = pts[0].t, t1 = pts[pts.length - 1].t;
  if (t1 - t0 < 1) { t0 -= 30; t1 += 30; }
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);

  const chart = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "data-check": check.check });
  chart.append(svg("title", {}, check.check + ": " + check.metric + " over time"));
  for (let v = lo; v <= hi + step / 2; v += step) {
    chart.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    chart.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, axisLabel(check.unit, v, step)));
  }
  const ticks = Math.min(5, Math.max(2, pts.length));
  for (let i = 0; i < ticks; i++) {
    const t = t0 + ((t1 - t0) * i) / (ticks - 1);
    chart.append(svg("text", { x: x(t), y: H - 10, "text-anchor": i === 0 ? "start" : i === ticks - 1 ? "end" : "middle" }, clock(t)));
  }
  chart.append(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
  chart.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  // A dashed mark where the stage changes: its looks compare a different cohort.
  for (let i = 1; i < pts.length; i++) {
    if (pts[i].stage !== pts[i - 1].stage) {
      const at = (x(pts[i].t) + x(pts[i - 1].t)) / 2;
      chart.append(svg("line", { class: "stage-mark", x1: at, x2: at, y1: T, y2: H - B }));
      chart.append(svg("text", { x: at + 3, y: T + 10 }, pts[i].stage));
    }
  }
  // Bounds as steps (a bound holds from one look to the next), then the two cohorts.
  for (const [key, cls] of [["max", "bound max"], ["min", "bound min"], ["regression_bound", "bound regression"]]) {
    const path = steps(pts, key, x, y, t1);
    if (path) {
      chart.append(svg("path", { class: cls, d: path }));
      const last = [...pts].reverse().find((p) => p[key] !== null);
      const label = key === "regression_bound" ? "regression limit" : key + " " + f(last[key]);
      const at = key === "regression_bound" ? x(last.t) : W - R - 2;
      chart.append(svg("text", { class: "bound-label", x: at, y: y(last[key]) - 4, "text-anchor": "end" }, label));
    }
  }
  for (const cohort of ["baseline", "canary"]) {
    const seen = pts.filter((p) => p[cohort] !== null);
    if (!seen.length) continue;
    chart.append(svg("polyline", { class: "line " + cohort, points: seen.map((p) => x(p.t) + "," + y(p[cohort])).join(" ") }));
    for (const p of seen) {
      const outcome = cohort === "canary" ? " " + p.outcome : "";
      const dot = svg("circle", { class: "pt " + cohort + outcome, cx: x(p.t), cy: y(p[cohort]), r: cohort === "canary" ? 4 : 3, "data-value": p[cohort] });
      const count = cohort === "canary" ? p.samples : p.baseline_samples;
      dot.append(svg("title", {}, cohort + " " + f(p[cohort]) + " at " + clock(p.t) + " (" + p.stage + (count !== null && count !== undefined ? ", " + count + " calls" : "") + ")" + (cohort === "canary" ? ": " + p.outcome : "")));
      chart.append(dot);
    }
  }
  const last = pts[pts.length - 1];
  const head = el("h4", {}, check.check + " ", el("span", { class: "muted" }, check.metric + (check.enforce ? "" : " (observe only)") + " · " + (check.bound || "")));
  const legend = el("div", { class: "legend" },
    el("span", {}, el("i", { class: "canary" }), "canary " + f(last.canary)),
    el("span", {}, el("i", { class: "baseline" }), "baseline " + f(last.baseline)),
    last.max !== null || last.min !== null ? el("span", {}, el("i", { class: "bound" }), "bound") : null,
    last.regression_bound !== null ? el("span", {}, el("i", { class: "regression" }), "regression limit " + f(last.regression_bound)) : null,
    el("span", {}, (check.looks || pts.length) + " look" + ((check.looks || pts.length) === 1 ? "" : "s") + (check.looks ? " (" + pts.length + " drawn)" : "")),
  );
  return el("div", { class: "plot", "data-check": check.check }, head, chart, legend);
}

function axisLabel(unit, v, step) {
  // Short labels that fit the axis: $20M, 1.5k tokens; the legend and tooltips carry full values.
  if (unit === "ratio") return (v * 100).toFixed(step * 100 < 1 ? 1 : 0) + "%";
  if (unit === "s") return v.toFixed(step < 1 ? 1 : 0) + "s";
  const money = unit === "usd_per_day" || unit === "usd_per_window" || unit === "usd";
  const a = Math.abs(v);
  const [scale, suffix] = a >= 1e9 ? [1e9, "G"] : a >= 1e6 ? [1e6, "M"] : a >= 1e4 ? [1e3, "k"] : [1, ""];
  const digits = step / scale < 1 ? (step / scale < 0.1 ? 2 : 1) : 0;
  return (money ? "$" : "") + (v / scale).toFixed(digits) + suffix;
}

function niceStep(raw) {
  // A tick step of 1, 2 or 5 times a power of ten: axis labels a person reads at a glance.
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const scaled = raw / power;
  return (scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10) * power;
}

function steps(pts, key, x, y, tEnd) {
  let d = "";
  let prev = null;
  for (const p of pts) {
    if (p[key] === null) { prev = null; continue; }
    if (prev === null) d += "M" + x(p.t) + "," + y(p[key]);
    else d += "H" + x(p.t) + "V" + y(p[key]);
    prev = p[key];
  }
  if (prev !== null) d += "H" + x(tEnd);
  return d;
}

// -- polling ----------------------------------------------------------------------------------
async function refresh() {
  const connection = document.getElementById("connection");
  try {
    const list = await getJSON("api/rollouts");
    selected = pick(list.rollouts);
    drawList(list);
    if (selected) {
      const id = encodeURIComponent(selected);
      const [detail, series] = await Promise.all([getJSON("api/rollouts/" + id), getJSON("api/rollouts/" + id + "/series?points=" + MAX_POINTS)]);
      drawDetail(detail);
      drawPlots(series);
    } else {
      document.getElementById("detail").hidden = true;
    }
    connection.textContent = "live";
    connection.className = "badge ok";
    setText("updated", "updated " + new Date().toISOString().slice(11, 19) + " UTC");
  } catch (e) {
    connection.textContent = "error: " + e.message;
    connection.className = "badge down";
  }
}

refresh();
setInterval(refresh, POLL_MS);
